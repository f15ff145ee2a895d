package itest

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/image/debian"
	"github.com/bulwark-project/bulwark/internal/imagestore"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// debianImageStore is where the Debian image is built and cached between
// runs (the build downloads ~100 MiB and takes a minute or two; a cached
// image is verified and reused in a second). BULWARK_ITEST_IMAGES overrides.
func debianImageStore() string {
	if d := os.Getenv("BULWARK_ITEST_IMAGES"); d != "" {
		return d
	}
	return "/var/tmp/bulwark-itest-images"
}

// debianImage builds (or reuses) the Debian test image with nginx and
// returns its directory and manifest.
func debianImage(t *testing.T) (string, *imagestore.Manifest) {
	t.Helper()
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		t.Skip("mmdebstrap not installed (apt-get install mmdebstrap; scripts/deps.sh installs it): no Debian image can be built")
	}
	store := debianImageStore()
	begin := time.Now()
	out, err := exec.Command(binPath, "image", "build", "--distro", "debian", "--images", store,
		"--name", "debian-12-itest", "--packages", "nginx", "-o", "json").Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("image build --distro debian: %v\n%s", err, lastLines(string(stderr), 40))
	}
	var res debian.Result
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("image build output: %v\n%s", err, out)
	}
	t.Logf("debian image: cached=%v in %v (%s %s)", res.Cached, time.Since(begin).Round(time.Second), res.Manifest.Name, res.Manifest.Version)
	// Verified on use: every file against the manifest.
	if out, err := exec.Command(binPath, "image", "verify", "debian-12-itest", "--images", store).CombinedOutput(); err != nil {
		t.Fatalf("image verify: %v\n%s", err, out)
	}
	return res.Dir, res.Manifest
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestDebianVM boots a Debian 12 server image (systemd, nginx) from a
// qcow2 overlay volume on its disk template under the daemon: it reaches a login prompt on the serial console,
// nginx answers a busybox VM across the switch, and a file written on the
// disk survives a stop and a start.
func TestDebianVM(t *testing.T) {
	imgPath, m := debianImage(t)
	h := newHost(t)

	// The root disk: a thin qcow2 overlay volume on the template, which is
	// imported into the storage pool against the manifest's digest (the
	// VM never sees the template itself, and the base stays read-only).
	disk := m.File(imagestore.RoleDisk)
	h.mustCLI(nil, "volume", "import", "debian-base", filepath.Join(imgPath, disk.Name), "--sha256", disk.SHA256)
	h.mustCLI(nil, "volume", "clone", "debian-base", "deb-root")

	h.mustCLI(nil, "network", "create", "lab", "--subnet", "10.30.0.0/24")
	h.mustCLI(nil, "sg", "create", "web")
	// Every boot: report nginx's state, serve a page of our own, and keep
	// a marker on the root disk (written on the first boot, read after).
	script := `m=/var/lib/bulwark-itest/marker
echo "debian-check nginx $(systemctl is-active nginx)"
echo "hello-from-debian $(hostname)" >/var/www/html/index.html
if [ -f $m ]; then echo "debian-marker found $(cat $m)"; else
  mkdir -p ${m%/*}; echo "boot-$(cat /proc/sys/kernel/random/uuid)" >$m; sync
  echo "debian-marker written $(cat $m)"; fi`
	_, err := h.c.CreateVM(context.Background(), vm.Spec{Name: "deb", VCPUs: 1, MemoryMiB: 512,
		Kernel: filepath.Join(imgPath, "vmlinuz"), Initrd: filepath.Join(imgPath, "initrd.img"),
		Cmdline: m.Cmdline + " bulwark.hostname=deb bulwark.ip=10.30.0.10/24",
		NICs:    []vm.NIC{{Network: "lab", IP: "10.30.0.10", Groups: []string{"web"}, MAC: "52:54:00:30:00:10"}},
		Disks:   []vm.Disk{{Volume: "default/deb-root"}, {Path: h.userdata("deb", script), ReadOnly: true}}})
	if err != nil {
		t.Fatalf("create the Debian VM: %v", err)
	}

	boot := func(n int) time.Duration {
		begin := time.Now()
		h.mustCLI(nil, "vm", "start", "deb")
		h.waitFor("the Debian VM's ready marker", 4*time.Minute, func() bool {
			return strings.Count(h.consoleLog("deb"), "bulwark-guest-ready hostname=deb") >= n
		})
		return time.Since(begin)
	}
	first := boot(1)
	t.Logf("first boot to services up (ready marker): %v", first.Round(100*time.Millisecond))
	h.waitFor("a login prompt on the serial console", time.Minute, func() bool {
		return regexp.MustCompile(`(?m)^deb login: `).MatchString(h.consoleLog("deb"))
	})
	h.waitConsole("deb", "debian-marker written boot-", 1)
	log := h.consoleLog("deb")
	if !strings.Contains(log, "debian-check nginx active") {
		t.Fatalf("nginx is not active:\n%s", lastLines(log, 60))
	}
	written := regexp.MustCompile(`debian-marker written (boot-\S+)`).FindStringSubmatch(log)[1]

	// The service answers across the switch: a busybox VM fetches the page.
	h.netVM("fetch", "network=lab,ip=10.30.0.20,group=web,mac=52:54:00:30:00:20",
		probe("page", "wget -q -O - http://10.30.0.10/ | grep -q hello-from-debian"))
	h.mustCLI(nil, "vm", "start", "fetch")
	h.expectProbe("fetch", "page", "ok")

	// Stop (ACPI power button; logind powers off) and start again: the
	// marker written on the first boot is still on the disk.
	begin := time.Now()
	h.mustCLI(nil, "vm", "stop", "deb")
	h.waitState("deb", "stopped")
	t.Logf("graceful stop: %v", time.Since(begin).Round(100*time.Millisecond))
	second := boot(2)
	t.Logf("second boot: %v", second.Round(100*time.Millisecond))
	h.waitConsole("deb", "debian-marker found", 1)
	if found := regexp.MustCompile(`debian-marker found (\S+)`).FindStringSubmatch(h.consoleLog("deb")); found[1] != written {
		t.Fatalf("marker after restart %q, written %q", found[1], written)
	}
}
