package image

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeELF returns a minimal x86-64 executable, dynamically linked when
// interp is non-empty, so the static check can be tested without depending
// on what the host has installed.
func fakeELF(t *testing.T, interp string) []byte {
	t.Helper()
	var buf bytes.Buffer
	hdr := elf.Header64{Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64), Version: 1,
		Phoff: 64, Ehsize: 64, Phentsize: 56, Shentsize: 64}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	hdr.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	hdr.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	progs := []elf.Prog64{{Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_X), Align: 4096}}
	if interp != "" {
		progs = append(progs, elf.Prog64{Type: uint32(elf.PT_INTERP), Flags: uint32(elf.PF_R),
			Off: 64 + 56*2, Filesz: uint64(len(interp) + 1), Memsz: uint64(len(interp) + 1), Align: 1})
	}
	hdr.Phnum = uint16(len(progs))
	binary.Write(&buf, binary.LittleEndian, hdr)
	binary.Write(&buf, binary.LittleEndian, progs)
	buf.WriteString(interp + "\x00")
	return buf.Bytes()
}

func TestCheckStaticELF(t *testing.T) {
	if err := checkStaticELF(fakeELF(t, "")); err != nil {
		t.Errorf("static: %v", err)
	}
	err := checkStaticELF(fakeELF(t, "/lib64/ld-linux-x86-64.so.2"))
	if err == nil || !strings.Contains(err.Error(), `dynamically linked (program interpreter "/lib64/ld-linux-x86-64.so.2")`) {
		t.Errorf("dynamic: %v", err)
	}
	if err := checkStaticELF([]byte("#!/bin/sh\necho hi\n")); err == nil || !strings.Contains(err.Error(), "not an ELF") {
		t.Errorf("script: %v", err)
	}
}

// fakeHost lays out a kernel, modules directory and busybox under a temp
// dir and points bootDir at it for the duration of the test.
func fakeHost(t *testing.T, version, dep string, files map[string][]byte) Options {
	t.Helper()
	root := t.TempDir()
	boot := filepath.Join(root, "boot")
	mods := filepath.Join(root, "modules", version)
	write := func(p string, data []byte) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(boot, "vmlinuz-"+version), []byte("kernel "+version))
	write(filepath.Join(mods, "modules.dep"), []byte(dep))
	for name, data := range files {
		write(filepath.Join(mods, name), data)
	}
	write(filepath.Join(root, "busybox"), fakeELF(t, ""))
	old := bootDir
	bootDir = boot
	t.Cleanup(func() { bootDir = old })
	return Options{ModulesRoot: filepath.Join(root, "modules"), BusyboxPath: filepath.Join(root, "busybox"),
		OutDir: filepath.Join(root, "out")}
}

func gz(t *testing.T, data []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(data)
	w.Close()
	return buf.Bytes()
}

// readInitrd returns the initrd's entries by name.
func readInitrd(t *testing.T, p string) map[string]newcRecord {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if zr.Header.Name != "" || !zr.Header.ModTime.IsZero() || zr.Header.OS != 255 {
		t.Errorf("gzip header not pinned: %+v", zr.Header)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]newcRecord)
	for _, r := range readNewc(t, raw) {
		out[r.name] = r
	}
	return out
}

func TestBuildFakeHost(t *testing.T) {
	dep := "k/virtio.ko: k/virtio_ring.ko\nk/virtio_ring.ko:\nk/virtio-net.ko.gz: k/virtio.ko k/virtio_ring.ko\n"
	opts := fakeHost(t, "6.1.0-1-test", dep, map[string][]byte{
		"k/virtio.ko": []byte("V"), "k/virtio_ring.ko": []byte("R"), "k/virtio-net.ko.gz": gz(t, []byte("N")),
	})
	res, err := Build(opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.KernelVersion != "6.1.0-1-test" || !slices.Equal(res.Modules, []string{"virtio_ring", "virtio", "virtio_net"}) {
		t.Errorf("result: %+v", res)
	}
	ents := readInitrd(t, res.Initrd)
	if got := string(ents["lib/modules/virtio_net.ko"].data); got != "N" {
		t.Errorf("gz module contents %q", got)
	}
	if got := string(ents["etc/bulwark-modules"].data); got != "virtio_ring\nvirtio\nvirtio_net\n" {
		t.Errorf("bulwark-modules %q", got)
	}
	for _, fi := range []string{res.Kernel, res.Initrd, filepath.Join(opts.OutDir, "manifest.json")} {
		st, err := os.Stat(fi)
		if err != nil || st.Mode().Perm() != 0o644 {
			t.Errorf("%s: %v %v", fi, st.Mode(), err)
		}
	}
	leftovers, _ := filepath.Glob(filepath.Join(opts.OutDir, ".*"))
	if len(leftovers) > 0 {
		t.Errorf("temp files left: %v", leftovers)
	}

	// An explicitly requested module that does not exist is named.
	opts.Modules = []string{"virtio_net", "virtio_blk"}
	if _, err := Build(opts); err == nil || !strings.Contains(err.Error(), "virtio_blk") {
		t.Errorf("missing explicit module: %v", err)
	}
}

func TestBuildErrors(t *testing.T) {
	opts := fakeHost(t, "6.1.0-1-test", "a.ko: b.ko.xz\nb.ko.xz:\n", map[string][]byte{"a.ko": nil, "b.ko.xz": nil})
	opts.Modules = []string{"a"}
	if _, err := Build(opts); err == nil || !strings.Contains(err.Error(), "compressed modules not supported") {
		t.Errorf("xz module: %v", err)
	}

	dyn := filepath.Join(t.TempDir(), "busybox")
	os.WriteFile(dyn, fakeELF(t, "/lib/ld.so"), 0o755)
	opts.BusyboxPath = dyn
	if _, err := Build(opts); err == nil || !strings.Contains(err.Error(), "dynamically linked") {
		t.Errorf("dynamic busybox: %v", err)
	}

	for _, o := range []Options{
		{},
		{OutDir: t.TempDir(), KernelVersion: "../../etc"},
		{OutDir: t.TempDir(), ModulesRoot: t.TempDir()},
	} {
		if _, err := Build(o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}

func TestNewestKernel(t *testing.T) {
	root, boot := t.TempDir(), t.TempDir()
	for _, v := range []string{"6.9.0-1-cloud-amd64", "6.10.0-1-cloud-amd64", "6.11.0-1-cloud-amd64", "5.10.0-9"} {
		os.MkdirAll(filepath.Join(root, v), 0o755)
		if v != "6.11.0-1-cloud-amd64" { // modules only, kernel removed
			os.WriteFile(filepath.Join(boot, "vmlinuz-"+v), nil, 0o644)
		}
		os.WriteFile(filepath.Join(root, v, "modules.dep"), nil, 0o644)
	}
	v, err := newestKernel(root, boot)
	if err != nil || v != "6.10.0-1-cloud-amd64" {
		t.Errorf("got %q, %v", v, err)
	}
	if _, err := newestKernel(t.TempDir(), boot); err == nil {
		t.Error("empty modules root accepted")
	}
}

func TestCompareVersions(t *testing.T) {
	sorted := []string{"5.10.0-9-amd64", "6.1.0-9-cloud-amd64", "6.1.0-56-cloud-amd64", "6.1.0-56-cloud-amd64a", "6.9", "6.10", "6.010.1"}
	for i := range sorted {
		for j := range sorted {
			if got, want := compareVersions(sorted[i], sorted[j]), cmpInt(i, j); got != want {
				t.Errorf("compare(%q, %q) = %d, want %d", sorted[i], sorted[j], got, want)
			}
		}
	}
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestInitScript(t *testing.T) {
	s := string(initScript)
	for _, want := range []string{"#!/bin/busybox sh\n", `echo "` + ReadyMarker + ` hostname=$hn"`,
		"bulwark-heartbeat $n", "mount -t devtmpfs", "setsid cttyhack sh -l"} {
		if !strings.Contains(s, want) {
			t.Errorf("init.sh lacks %q", want)
		}
	}
	if _, err := os.Stat("/bin/busybox"); err == nil {
		if out, err := exec.Command("/bin/busybox", "sh", "-n", "init.sh").CombinedOutput(); err != nil {
			t.Errorf("init.sh syntax: %v\n%s", err, out)
		}
	}
}

// TestBuildHostReproducible builds from the real host kernel twice and
// requires byte-identical output.
func TestBuildHostReproducible(t *testing.T) {
	kernels, _ := filepath.Glob("/boot/vmlinuz-*")
	if len(kernels) == 0 {
		t.Skip("no /boot/vmlinuz-*")
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("no /bin/busybox")
	}
	var results [2]*Result
	for i := range results {
		res, err := Build(Options{OutDir: filepath.Join(t.TempDir(), "img")})
		if err != nil {
			t.Fatal(err)
		}
		results[i] = res
	}
	a, b := results[0], results[1]
	if a.InitrdSHA256 != b.InitrdSHA256 || a.KernelSHA256 != b.KernelSHA256 || !slices.Equal(a.Modules, b.Modules) {
		t.Fatalf("builds differ:\n%+v\n%+v", a, b)
	}
	for _, p := range [][2]string{{a.Initrd, b.Initrd}, {a.Kernel, b.Kernel}} {
		x, _ := os.ReadFile(p[0])
		y, _ := os.ReadFile(p[1])
		if len(x) == 0 || !bytes.Equal(x, y) {
			t.Errorf("%s and %s differ", p[0], p[1])
		}
	}
	if !slices.Contains(a.Modules, "virtio_net") || !slices.Contains(a.Modules, "virtio_mmio") {
		t.Errorf("modules %v lack virtio_net/virtio_mmio", a.Modules)
	}
	checkManifest(t, a)
	ents := readInitrd(t, a.Initrd)
	if !bytes.Equal(ents["init"].data, initScript) || ents["init"].mode != 0o100755 {
		t.Error("init missing or wrong")
	}
	if len(ents["bin/busybox"].data) == 0 {
		t.Error("busybox missing")
	}
	for _, m := range a.Modules {
		if len(ents["lib/modules/"+m+".ko"].data) == 0 {
			t.Errorf("module %s missing", m)
		}
	}
}

func checkManifest(t *testing.T, want *Result) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(filepath.Dir(want.Initrd), "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got Result
	if err := json.Unmarshal(raw, &got); err != nil || !strings.HasSuffix(string(raw), "}\n") {
		t.Fatalf("manifest: %v\n%s", err, raw)
	}
	if !slices.Equal(got.Modules, want.Modules) || got.InitrdSHA256 != want.InitrdSHA256 || got.Kernel != want.Kernel {
		t.Errorf("manifest %+v, want %+v", got, *want)
	}
}
