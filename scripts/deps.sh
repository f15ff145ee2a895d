#!/usr/bin/env bash
# Installs what Bulwark needs on Debian 12 (as root): the guest kernel and
# busybox the image builder packs, QEMU, and a Go toolchain new enough for
# go.mod. Sourced by demo.sh and test.sh; safe to run again.
set -euo pipefail

BULWARK_APT_PACKAGES=(qemu-system-x86 qemu-utils mmdebstrap e2fsprogs linux-image-cloud-amd64 busybox-static kmod iproute2 procps ca-certificates git swtpm swtpm-tools)

install_packages() {
	local missing=()
	for p in "${BULWARK_APT_PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	if ((${#missing[@]})); then
		echo "bulwark: installing ${missing[*]}" >&2
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	fi
}

# go_required prints the toolchain go.mod asks for, e.g. 1.26.8.
go_required() {
	sed -n 's/^go \([0-9.]*\)$/\1/p' "$BULWARK_ROOT/go.mod"
}

version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

# ensure_go puts a Go toolchain >= go.mod's on PATH. Order: one already
# installed (/usr/local/go on our build machines), else Debian's golang-go
# used only to fetch the required toolchain as a module through the
# configured Go module proxy (the toolchain is published as
# golang.org/toolchain), which is then used for everything.
ensure_go() {
	export PATH="/usr/local/go/bin:$PATH"
	local want have
	want=$(go_required)
	if command -v go >/dev/null; then
		have=$(go env GOVERSION | sed 's/^go//')
		if version_ge "$have" "$want"; then return 0; fi
	fi
	echo "bulwark: need Go $want; fetching it as a module" >&2
	command -v go >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go >/dev/null
	local mod="golang.org/toolchain@v0.0.1-go${want}.linux-amd64" dir dest="/usr/local/go-bulwark-$want"
	if [ ! -x "$dest/bin/go" ]; then
		dir=$(cd /tmp && GOFLAGS=-mod=mod GOTOOLCHAIN=local go mod download -json "$mod" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
		[ -f "$dir/bin/go" ] || { echo "bulwark: could not fetch $mod" >&2; return 1; }
		# The module cache is read-only and module zips carry no exec bits.
		rm -rf "$dest.tmp" && cp -r "$dir" "$dest.tmp" && chmod -R u+w "$dest.tmp" &&
			chmod +x "$dest.tmp"/bin/* "$dest.tmp"/pkg/tool/*/* && mv "$dest.tmp" "$dest"
	fi
	export PATH="$dest/bin:$PATH"
}

bulwark_deps() {
	[ "$(id -u)" = 0 ] || { echo "bulwark: run as root" >&2; exit 1; }
	install_packages
	ensure_go
	export GOTOOLCHAIN=local
}

# bulwark_test_deps adds what only the tests need: Chromium for the web
# console's browser test, asciinema as a second reader of recordings, and
# Node.js with npm to check that the embedded web assets rebuild from the
# lockfile. npm comes with some Node.js packagings (NodeSource's) and
# separately with Debian's, so it is installed only when missing.
bulwark_test_deps() {
	# gcc and libc6-dev build the hostile stand-in for QEMU (static C) that
	# the jail's test runs in place of the real one.
	# nftables: the switch benchmark's kernel-path peer.
	# strace: the test that QEMU opens no firmware but the measured one.
	# tshark: reads the mirror's pcap files and decodes its ERSPAN packets;
	# jq: reads the IPS's EVE lines as SIEM tooling would.
	BULWARK_APT_PACKAGES+=(chromium asciinema gcc libc6-dev nftables strace tshark jq)
	command -v npm >/dev/null || BULWARK_APT_PACKAGES+=(nodejs npm)
	install_packages
}
