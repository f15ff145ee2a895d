package qemu

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestPinnedFirmware(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 not installed")
	}
	fw, err := PinnedFirmware("qemu-system-x86_64")
	if err != nil {
		t.Fatal(err)
	}
	if len(fw) != 1 || fw[0].Name != BIOSName {
		t.Fatalf("PinnedFirmware = %+v, want only %s", fw, BIOSName)
	}
	dir, _ := DataDir("qemu-system-x86_64")
	want, err := filepath.EvalSymlinks(filepath.Join(dir, BIOSName))
	if err != nil {
		t.Fatal(err)
	}
	if fw[0].File.Name() != want {
		t.Errorf("opened %s, want the resolved path %s", fw[0].File.Name(), want)
	}
	if err := fw[0].Check(); err != nil {
		t.Error(err)
	}
	again, err := PinnedFirmware("qemu-system-x86_64")
	if err != nil || len(again) != 1 || again[0] != fw[0] {
		t.Errorf("second call opened again: %+v, %v", again, err)
	}
}

// TestFirmwareChangedInPlace: a write to the opened inode is refused at
// the next launch; a replacement by rename (a package upgrade) is not
// seen, the measured file stays the one passed.
func TestFirmwareChangedInPlace(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "qboot.rom")
	os.WriteFile(p, []byte(strings.Repeat("a", 4096)), 0o644)
	os.Symlink("qboot.rom", filepath.Join(dir, BIOSName))
	fw, err := openFirmware(filepath.Join(dir, BIOSName))
	if err != nil {
		t.Fatal(err)
	}
	defer fw.File.Close()
	if fw.Name != BIOSName || fw.File.Name() != p {
		t.Fatalf("name %s file %s", fw.Name, fw.File.Name())
	}
	tmp := filepath.Join(dir, "new")
	os.WriteFile(tmp, []byte("other"), 0o644)
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	if err := fw.Check(); err != nil {
		t.Errorf("replaced by rename: %v", err)
	}
	// The pinned inode, no longer linked: written through its descriptor.
	f, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", fw.File.Fd()), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("b"), 100)
	f.Close()
	if err := fw.Check(); err == nil || !strings.Contains(err.Error(), "changed in place") {
		t.Errorf("written in place: Check = %v", err)
	}
	if _, err := openFirmware(filepath.Join(dir, "missing.bin")); err == nil {
		t.Error("missing firmware opened")
	}
	os.WriteFile(filepath.Join(dir, "empty.bin"), nil, 0o644)
	if _, err := openFirmware(filepath.Join(dir, "empty.bin")); err == nil {
		t.Error("empty firmware accepted")
	}
}

// TestFirmwareIsAllQEMUOpens runs the real QEMU under strace with the
// command line Build writes (virtio-blk and virtio-net devices, -kernel,
// the BIOS by descriptor) up to the end of machine init (-S, QMP
// greeting): it opens nothing in its data directory and no other firmware
// or ROM file; the BIOS it loads is the descriptor it was given. This is
// what makes the measured set (PCR 11: the BIOS alone) the loaded set.
func TestFirmwareIsAllQEMUOpens(t *testing.T) {
	for _, bin := range []string{"qemu-system-x86_64", "strace"} {
		if _, err := exec.LookPath(bin); err != nil {
			// scripts/deps.sh installs both for tests: a skip would read
			// as a pass.
			t.Fatalf("%s is not installed (apt-get install qemu-system-x86 strace; scripts/deps.sh does it): %v", bin, err)
		}
	}
	fw, err := PinnedFirmware("qemu-system-x86_64")
	if err != nil {
		t.Fatal(err)
	}
	dataDir, _ := DataDir("qemu-system-x86_64")
	dir := t.TempDir()
	kernel := filepath.Join(dir, "vmlinuz")
	if ks, _ := filepath.Glob("/boot/vmlinuz-*"); len(ks) > 0 {
		kernel = ks[0] // a real bzImage: the path QEMU takes for it adds linuxboot_dma.bin
	} else {
		os.WriteFile(kernel, make([]byte, 64<<10), 0o644)
	}
	disk := filepath.Join(dir, "disk.raw")
	os.WriteFile(disk, make([]byte, 1<<20), 0o600)
	mem := filepath.Join(dir, "mem")
	os.WriteFile(mem, nil, 0o600)
	a := Args{Name: "fw", Accel: "tcg", VCPUs: 1, MemoryMiB: 64, MemPath: mem, Kernel: kernel, BIOS: "/proc/self/fd/3",
		QMPSocket: filepath.Join(dir, "qmp.sock"), ConsoleSocket: filepath.Join(dir, "con.sock"),
		Disks: []DiskArg{{Path: disk, ReadOnly: true}},
		NICs:  []NICArg{{MAC: "52:54:00:00:00:01", Local: filepath.Join(dir, "n.sock"), Remote: filepath.Join(dir, "r.sock")}}}
	trace := filepath.Join(dir, "trace")
	argv := append([]string{"-f", "-e", "trace=open,openat,openat2,access,faccessat,faccessat2", "-o", trace, "qemu-system-x86_64"}, a.Build()...)
	cmd := exec.Command("strace", append(argv, "-S")...)
	cmd.ExtraFiles = []*os.File{fw[0].File}
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	// Its own group: killing strace alone would leave QEMU running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("unix", a.QMPSocket)
		if err == nil {
			// The greeting comes from the monitor's own thread, possibly
			// before machine init; a command's answer comes from the main
			// loop, which runs only once the machine is built.
			rd := bufio.NewReader(c)
			greeting, _ := rd.ReadString('\n')
			c.SetDeadline(time.Now().Add(20 * time.Second))
			c.Write([]byte(`{"execute":"qmp_capabilities"}` + "\n"))
			answer, _ := rd.ReadString('\n')
			c.Close()
			if !strings.Contains(greeting, "QMP") || !strings.Contains(answer, `"return"`) {
				t.Fatalf("QMP greeting %q, answer %q", greeting, answer)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("QEMU did not come up: %s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// SIGTERM, not SIGKILL: strace then writes out what it buffered.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("QEMU did not quit: %s", out)
	}
	raw, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	call := regexp.MustCompile(`(open|openat|openat2|access|faccessat|faccessat2)\((?:AT_FDCWD, )?"([^"]*)"`)
	biosOpened := false
	for _, line := range strings.Split(string(raw), "\n") {
		m := call.FindStringSubmatch(line)
		if m == nil || strings.Contains(line, "= -1 ") {
			continue
		}
		p := m[2]
		switch {
		case p == a.BIOS && strings.HasPrefix(m[1], "open"):
			biosOpened = true
		case strings.HasPrefix(p, dataDir+"/"), strings.Contains(p, "/share/qemu"), strings.Contains(p, "seabios"),
			strings.HasSuffix(p, ".bin"), strings.HasSuffix(p, ".rom"), strings.HasSuffix(p, ".img"), strings.HasSuffix(p, ".fd"):
			t.Errorf("QEMU opened %s: %s", p, line)
		}
	}
	if !biosOpened {
		t.Errorf("QEMU never opened the BIOS descriptor %s", a.BIOS)
	}
}
