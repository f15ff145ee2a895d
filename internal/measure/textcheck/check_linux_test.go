package textcheck

import (
	"bufio"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary re-executes itself as the process under check.
func TestMain(m *testing.M) {
	switch os.Getenv("TEXTCHECK_CHILD") {
	case "idle":
		childIdle()
	case "anon":
		// An anonymous rwx mapping, as TCG's code buffer is.
		b, err := syscall.Mmap(-1, 0, 1<<16, syscall.PROT_READ|syscall.PROT_WRITE|syscall.PROT_EXEC, syscall.MAP_PRIVATE|syscall.MAP_ANON)
		if err != nil {
			os.Exit(3)
		}
		b[0] = 0xc3
		childIdle()
	}
	os.Exit(m.Run())
}

func childIdle() {
	sink = patchTarget(1)
	os.Stdout.WriteString("ready\n")
	io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// patchTarget is the function whose code the tests patch in the child.
//
//go:noinline
func patchTarget(x int) int { return x*3 + 1 }

var sink int

// child is a running process under test; its stdin holds it alive.
type child struct {
	cmd *exec.Cmd
	in  io.WriteCloser
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) stop() {
	c.in.Close()
	c.cmd.Process.Kill()
	c.cmd.Wait()
}

// startSelf runs the test binary in child mode and waits until it is idle.
func startSelf(t testing.TB, mode string) *child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "TEXTCHECK_CHILD="+mode)
	return startChild(t, cmd, true)
}

func startChild(t testing.TB, cmd *exec.Cmd, waitReady bool) *child {
	t.Helper()
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, in: in}
	t.Cleanup(c.stop)
	if waitReady {
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || line != "ready\n" {
			t.Fatalf("child: %q, %v", line, err)
		}
		return c
	}
	go io.Copy(io.Discard, out)
	waitMapped(t, c.pid())
	return c
}

// waitMapped waits until the dynamic loader is done (libc is mapped) in a
// freshly started C program.
func waitMapped(t testing.TB, pid int) {
	t.Helper()
	for i := 0; i < 200; i++ {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
		if strings.Contains(string(b), "libc.so") {
			time.Sleep(50 * time.Millisecond)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("pid %d: libc never mapped", pid)
}

func mustClean(t *testing.T, r Result, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Mismatches) != 0 || r.Error != "" {
		t.Fatalf("clean process reported: %+v", r.RuntimeCheck)
	}
	if r.Bytes == 0 || r.Objects == 0 {
		t.Fatalf("nothing compared: %+v", r)
	}
}

func selfTarget(t testing.TB, pid int) Target {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return Target{Process: "daemon", PID: pid, Binary: exe}
}

// TestCleanGoProcess: an untouched child running the test binary (a Go
// executable, dynamically linked here) compares equal, vdso included.
func TestCleanGoProcess(t *testing.T) {
	c := startSelf(t, "idle")
	r, err := NewChecker().Check(selfTarget(t, c.pid()))
	mustClean(t, r, err)
	t.Logf("compared %d bytes in %d objects, %d masked, notes %v", r.Bytes, r.Objects, r.Masked, r.Notes)
}

// TestCleanPIE: a real PIE C program with libc and the dynamic loader
// compares equal with nothing masked (PIE code has no text relocations).
func TestCleanPIE(t *testing.T) {
	c := startChild(t, exec.Command("/usr/bin/sleep", "60"), false)
	r, err := NewChecker().Check(Target{Process: "qemu", VM: "t", PID: c.pid(), Binary: "/usr/bin/sleep"})
	mustClean(t, r, err)
	if r.Objects < 3 || r.Masked != 0 || len(r.Notes) != 0 {
		t.Errorf("objects %d (want sleep, libc, ld.so), masked %d, notes %v", r.Objects, r.Masked, r.Notes)
	}
}

// TestCleanQEMU: a real QEMU (TCG) compares equal; its JIT buffer is a note.
func TestCleanQEMU(t *testing.T) {
	const bin = "/usr/bin/qemu-system-x86_64"
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("needs %s: %v", bin, err)
	}
	c := startQEMU(t, bin)
	r, err := NewChecker().Check(Target{Process: "qemu", VM: "none", PID: c.pid(), Binary: bin})
	mustClean(t, r, err)
	jit := false
	for _, n := range r.Notes {
		jit = jit || (n.Kind == NoteAnonymous && n.Perms == "rwxp")
	}
	if !jit {
		t.Errorf("no note for TCG's rwx code buffer: %+v", r.Notes)
	}
	t.Logf("qemu: %d bytes in %d objects, %d masked, notes %+v", r.Bytes, r.Objects, r.Masked, r.Notes)
}

func startQEMU(t testing.TB, bin string) *child {
	c := startChild(t, exec.Command(bin, "-M", "none", "-S", "-nographic", "-nodefaults", "-monitor", "none", "-serial", "none"), false)
	// The TCG module and its buffer come after libc.
	for i := 0; i < 200; i++ {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/maps", c.pid()))
		if strings.Contains(string(b), "rwxp") {
			return c
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("qemu never allocated its TCG buffer")
	return nil
}

// execMapping finds the executable mapping of pid holding file offset off
// of the file named name.
func addrOf(t *testing.T, pid int, name string, off uint64) uint64 {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	maps, err := ParseMaps(raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range maps {
		if m.Exec() && m.Name == name && off >= m.Offset && off-m.Offset < m.Size() {
			return m.Start + (off - m.Offset)
		}
	}
	t.Fatalf("pid %d: no executable mapping of %s at offset %#x", pid, name, off)
	return 0
}

// symbolOffset returns the file offset and name of the first symbol of
// path whose name has the suffix.
func symbolOffset(t *testing.T, path, suffix string, dynamic bool) (uint64, string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if dynamic {
		syms, err = f.DynamicSymbols()
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range syms {
		if strings.HasSuffix(s.Name, suffix) && s.Size > 8 && elf.ST_TYPE(s.Info) == elf.STT_FUNC {
			for _, p := range f.Progs {
				if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 && s.Value >= p.Vaddr && s.Value < p.Vaddr+p.Filesz {
					return p.Off + (s.Value - p.Vaddr), s.Name
				}
			}
		}
	}
	t.Fatalf("%s: no function symbol *%s", path, suffix)
	return 0, ""
}

// poke flips one byte of pid's memory through /proc/PID/mem (root may
// write there; the kernel copies the page on write).
func poke(t *testing.T, pid int, addr uint64) (old, new byte) {
	t.Helper()
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/mem", pid), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, int64(addr)); err != nil {
		t.Fatal(err)
	}
	old, new = b[0], b[0]^0xff
	if _, err := f.WriteAt([]byte{new}, int64(addr)); err != nil {
		t.Fatal(err)
	}
	return old, new
}

func wantOne(t *testing.T, r Result, object string, off uint64, symbol string, old, new byte) {
	t.Helper()
	if len(r.Mismatches) != 1 || r.Omitted != 0 {
		t.Fatalf("want exactly one mismatch, got %+v (omitted %d)", r.Mismatches, r.Omitted)
	}
	m := r.Mismatches[0]
	want := fmt.Sprintf("%02x", old)
	got := fmt.Sprintf("%02x", new)
	if m.Object != object || m.Offset != off || m.Length != 1 || m.Expected != want || m.Found != got || m.Symbol != symbol {
		t.Fatalf("mismatch %+v\nwant object %s offset %#x length 1 expected %s found %s symbol %q", m, object, off, want, got, symbol)
	}
}

// TestPatchedByte: one byte patched in the child's own function is
// reported at exactly its file offset, with the function's name.
func TestPatchedByte(t *testing.T) {
	c := startSelf(t, "idle")
	tg := selfTarget(t, c.pid())
	off := goFuncOffset(t, tg.Binary, "textcheck.patchTarget")
	name := "github.com/bulwark-project/bulwark/internal/measure/textcheck.patchTarget"
	old, new := poke(t, c.pid(), addrOf(t, c.pid(), tg.Binary, off+3))
	r, err := NewChecker().Check(tg)
	if err != nil {
		t.Fatal(err)
	}
	wantOne(t, r, tg.Binary, off+3, name+"+0x3", old, new)
}

// TestPatchedLibrary: a byte patched in libc is reported against libc,
// symbolized from its dynamic symbols.
func TestPatchedLibrary(t *testing.T) {
	c := startChild(t, exec.Command("/usr/bin/sleep", "60"), false)
	libc := ""
	raw, _ := os.ReadFile(fmt.Sprintf("/proc/%d/maps", c.pid()))
	maps, err := ParseMaps(raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range maps {
		if m.Exec() && strings.Contains(m.Name, "/libc.so") {
			libc = m.Name
		}
	}
	off, _ := symbolOffset(t, libc, "getpwnam", true)
	old, new := poke(t, c.pid(), addrOf(t, c.pid(), libc, off+5))
	r, err := NewChecker().Check(Target{Process: "qemu", PID: c.pid(), Binary: "/usr/bin/sleep"})
	if err != nil {
		t.Fatal(err)
	}
	// Aliases may share the address (getpwnam has none today):
	// any name of a function at off is right.
	sym := ""
	if len(r.Mismatches) == 1 {
		sym = r.Mismatches[0].Symbol
		name, _, _ := strings.Cut(sym, "+")
		if o, _ := symbolOffset(t, libc, name, true); o == off {
			sym = name + "+0x5"
		}
	}
	wantOne(t, r, libc, off+5, sym, old, new)
}

// TestPatchedVDSO: the vdso is compared with the checker's own.
func TestPatchedVDSO(t *testing.T) {
	c := startSelf(t, "idle")
	raw, _ := os.ReadFile(fmt.Sprintf("/proc/%d/maps", c.pid()))
	maps, _ := ParseMaps(raw)
	var vdso Mapping
	for _, m := range maps {
		if m.Name == "[vdso]" {
			vdso = m
		}
	}
	if vdso.Start == 0 {
		t.Skip("no vdso")
	}
	// The child is stopped while its vdso is patched: the Go runtime calls
	// vdso functions (clock_gettime) and would crash on the flipped byte
	// before the check reads it (the check then saw the process die).
	if err := syscall.Kill(c.pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	poke(t, c.pid(), vdso.Start+0x800)
	r, err := NewChecker().Check(selfTarget(t, c.pid()))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Mismatches) != 1 || r.Mismatches[0].Object != "[vdso]" || r.Mismatches[0].Offset != 0x800 {
		t.Fatalf("want one [vdso] mismatch at 0x800, got %+v", r.Mismatches)
	}
}

// TestWrongBinary: a process running another file than the expected one
// is a mismatch, never clean.
func TestWrongBinary(t *testing.T) {
	c := startChild(t, exec.Command("/usr/bin/sleep", "60"), false)
	exe, _ := os.Executable()
	r, err := NewChecker().Check(Target{Process: "qemu", PID: c.pid(), Binary: exe})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Mismatches) == 0 || !strings.HasPrefix(r.Mismatches[0].Symbol, KindWrongBinary) {
		t.Fatalf("want a %s finding first, got %+v", KindWrongBinary, r.Mismatches)
	}
	t.Log(r.Mismatches[0].Symbol)
}

// TestAnonymousExec: an anonymous rwx mapping is a note, not a mismatch.
func TestAnonymousExec(t *testing.T) {
	c := startSelf(t, "anon")
	r, err := NewChecker().Check(selfTarget(t, c.pid()))
	mustClean(t, r, err)
	if len(r.Notes) != 1 || r.Notes[0].Kind != NoteAnonymous || r.Notes[0].Perms != "rwxp" {
		t.Fatalf("notes %+v, want one rwxp %s", r.Notes, NoteAnonymous)
	}
}

// TestExited: a process that exited, or a PID whose start time is not the
// one the caller knows, is ErrProcessGone.
func TestExited(t *testing.T) {
	cmd := exec.Command("/usr/bin/true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	chk := NewChecker()
	r, err := chk.Check(Target{Process: "qemu", PID: cmd.Process.Pid, Binary: "/usr/bin/true"})
	if !errors.Is(err, ErrProcessGone) || r.Error == "" {
		t.Fatalf("exited process: %v (%q), want ErrProcessGone", err, r.Error)
	}
	c := startSelf(t, "idle")
	tg := selfTarget(t, c.pid())
	tg.StartTime = 1
	if _, err := chk.Check(tg); !errors.Is(err, ErrProcessGone) {
		t.Fatalf("start time differs: %v, want ErrProcessGone", err)
	}
}

// BenchmarkCheckSelf checks the test binary's own process.
func BenchmarkCheckSelf(b *testing.B) {
	chk := NewChecker()
	tg := selfTarget(b, os.Getpid())
	var r Result
	for b.Loop() {
		var err error
		if r, err = chk.Check(tg); err != nil || len(r.Mismatches) != 0 {
			b.Fatalf("%v %+v", err, r.Mismatches)
		}
	}
	b.SetBytes(r.Bytes)
	b.ReportMetric(float64(r.Bytes), "code-bytes/op")
}

// BenchmarkCheckQEMU checks a running QEMU (TCG, -M none) with its ~50
// libraries: the cost of one VM per daemon check.
func BenchmarkCheckQEMU(b *testing.B) {
	const bin = "/usr/bin/qemu-system-x86_64"
	if _, err := os.Stat(bin); err != nil {
		b.Skipf("needs %s: %v", bin, err)
	}
	c := startQEMU(b, bin)
	chk := NewChecker()
	tg := Target{Process: "qemu", PID: c.pid(), Binary: bin}
	var r Result
	for b.Loop() {
		var err error
		if r, err = chk.Check(tg); err != nil || len(r.Mismatches) != 0 {
			b.Fatalf("%v %+v", err, r.Mismatches)
		}
	}
	b.SetBytes(r.Bytes)
	b.ReportMetric(float64(r.Bytes), "code-bytes/op")
	b.ReportMetric(float64(r.Objects), "objects/op")
}

// goFuncOffset returns the file offset of a Go function, from .gopclntab
// (go test links with -s: there is no .symtab).
func goFuncOffset(t *testing.T, path, suffix string) uint64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	o, err := parseObject(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	syms, err := loadSymbols(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range syms {
		if strings.HasSuffix(s.name, suffix) {
			off, ok := o.fileOffset(s.value, true)
			if !ok {
				t.Fatalf("%s at %#x is not in code", s.name, s.value)
			}
			return off
		}
	}
	t.Fatalf("%s: no function *%s", path, suffix)
	return 0
}
