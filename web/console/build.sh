#!/usr/bin/env bash
# Builds the web console's assets into internal/webui/assets, which the
# daemon embeds. There is no bundler: the page is its hand-written files in
# src/ plus xterm's prebuilt script and stylesheet, installed from the
# lockfile (npm ci checks every package's integrity hash) without running
# any package scripts.
#
#   build.sh           rebuild internal/webui/assets
#   build.sh --check   rebuild into a temporary folder and fail, naming the
#                      file, if internal/webui/assets differs from it
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
assets="$here/../../internal/webui/assets"

# The exact set of assets, as "destination<TAB>source" (source relative to
# this folder, after npm ci). webui.go serves these names and nothing else.
manifest() {
	printf '%s\t%s\n' \
		index.html src/index.html \
		app.js src/app.js \
		app.css src/app.css \
		xterm.js node_modules/@xterm/xterm/lib/xterm.js \
		xterm.css node_modules/@xterm/xterm/css/xterm.css \
		xterm-LICENSE.txt node_modules/@xterm/xterm/LICENSE
}

mode=build
case "${1:-}" in
"") ;;
--check) mode=check ;;
*)
	echo "usage: $0 [--check]" >&2
	exit 2
	;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Install in a scratch copy so the build never depends on (or changes) a
# node_modules someone left in web/console.
mkdir -p "$work/pkg" "$work/out"
cp "$here/package.json" "$here/package-lock.json" "$work/pkg/"
cp -R "$here/src" "$work/pkg/src"
(cd "$work/pkg" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)

while IFS=$'\t' read -r dst src; do
	cp "$work/pkg/$src" "$work/out/$dst"
done < <(manifest)

if [ "$mode" = build ]; then
	mkdir -p "$assets"
	# Replace the folder's contents whole, so a dropped asset leaves too.
	find "$assets" -mindepth 1 -delete
	cp "$work/out/"* "$assets/"
	echo "built $(ls "$assets" | wc -l) assets into internal/webui/assets"
	exit 0
fi

stale=0
while IFS=$'\t' read -r dst _; do
	if [ ! -f "$assets/$dst" ]; then
		echo "internal/webui/assets/$dst is missing: run web/console/build.sh" >&2
		stale=1
	elif ! cmp -s "$work/out/$dst" "$assets/$dst"; then
		echo "internal/webui/assets/$dst is stale: run web/console/build.sh" >&2
		stale=1
	fi
done < <(manifest)
for f in "$assets"/* "$assets"/.[!.]*; do
	[ -e "$f" ] || continue
	if [ ! -e "$work/out/$(basename "$f")" ]; then
		echo "internal/webui/assets/$(basename "$f") is not a built asset: run web/console/build.sh" >&2
		stale=1
	fi
done
if [ "$stale" -ne 0 ]; then
	exit 1
fi
echo "internal/webui/assets is up to date"
