package jail

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == Command {
		Main(testSeccomp)
	}
	if os.Getenv("BULWARK_JAIL_PROBE") == "1" {
		probe()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// probe runs inside the jail and prints what it sees, one "key=value" per
// line, for TestStartConfines to check.
func probe() {
	p := func(k string, v any) { fmt.Printf("%s=%v\n", k, v) }
	p("pid", os.Getpid())
	p("uid", os.Getuid())
	p("gid", os.Getgid())
	groups, _ := os.Getgroups()
	p("groups", len(groups))
	var un unix.Utsname
	unix.Uname(&un)
	p("hostname", unix.ByteSliceToString(un.Nodename[:]))
	var names []string
	ents, _ := os.ReadDir("/")
	for _, e := range ents {
		names = append(names, e.Name())
	}
	p("root", strings.Join(names, ","))
	status, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(status), "\n") {
		for _, k := range []string{"CapEff", "CapBnd", "CapPrm", "NoNewPrivs", "Seccomp"} {
			if strings.HasPrefix(line, k+":") {
				p(k, strings.TrimSpace(strings.TrimPrefix(line, k+":")))
			}
		}
	}
	_, err := os.Open("/etc/shadow")
	p("shadow", err != nil)
	err = os.WriteFile("/planted", []byte("x"), 0o644)
	p("write_root", errString(err))
	var lim unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &lim)
	p("nofile", lim.Cur)
	unix.Getrlimit(unix.RLIMIT_CORE, &lim)
	p("core", lim.Cur)
	b := make([]byte, 16)
	n, _ := unix.Read(3, b)
	p("fd3", string(b[:n]))
	_, err = unix.FcntlInt(4, unix.F_GETFD, 0)
	p("fd4", errString(err))
	procs, _ := os.ReadDir("/proc")
	var pids []string
	for _, e := range procs {
		if e.Name()[0] >= '0' && e.Name()[0] <= '9' {
			pids = append(pids, e.Name())
		}
	}
	p("procpids", strings.Join(pids, ","))
	ifs, _ := os.ReadDir("/sys/class/net")
	p("sys", len(ifs))
}

// testSeccomp stands in for the real allow lists (tested in their own
// package): no_new_privs plus a filter that allows everything but
// reports seccomp mode 2.
func testSeccomp(name string) error {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return err
	}
	prog := []unix.SockFilter{{Code: 0x06, K: 0x7fff0000}} // ret ALLOW
	fprog := unix.SockFprog{Len: 1, Filter: &prog[0]}
	_, _, e := unix.Syscall(unix.SYS_SECCOMP, 1 /* SET_MODE_FILTER */, 1 /* TSYNC */, uintptr(unsafe.Pointer(&fprog)))
	if e != 0 {
		return e
	}
	return nil
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

func testSpec(t *testing.T) Spec {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("jails need root")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	binds, links, err := ProgramBinds(self)
	if err != nil {
		t.Fatal(err)
	}
	binds = append(binds, Bind{Path: "/dev/null", Device: true})
	root := filepath.Join(t.TempDir(), "root")
	if err := os.Mkdir(root, 0o700); err != nil {
		t.Fatal(err)
	}
	selfPath, _ := resolvedDir(self)
	return Spec{Name: "jail-test", Root: root, Path: selfPath, Args: []string{selfPath}, Env: []string{"BULWARK_JAIL_PROBE=1"},
		Binds: binds, Symlinks: links, Proc: true, UID: 65534, GID: 65534,
		Rlimits: Rlimits{NoFile: 64, NProc: 4096, FSize: 1 << 20}, Seccomp: "monitor"}
}

func TestStartConfines(t *testing.T) {
	SelfExe, _ = os.Executable()
	spec := testSpec(t)
	pr, pw, _ := os.Pipe()
	pw.WriteString("payload")
	pw.Close()
	var out, errb bytes.Buffer
	cmd, err := Start(spec, []*os.File{pr}, &out, &errb, nil)
	pr.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v: %s", err, errb.String())
	}
	got := map[string]string{}
	for _, line := range strings.Split(out.String(), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			got[k] = v
		}
	}
	want := map[string]string{
		"pid": "1", "uid": "65534", "gid": "65534", "groups": "0", "hostname": "jail-test",
		"CapEff": "0000000000000000", "CapPrm": "0000000000000000", "CapBnd": "0000000000000000",
		"NoNewPrivs": "1", "Seccomp": "2", "shadow": "true", "nofile": "64", "core": "0",
		"fd3": "payload", "fd4": "bad file descriptor", "procpids": "1", "sys": "0",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if !strings.Contains(got["write_root"], "read-only file system") {
		t.Errorf("writing to the jail's root: %q, want EROFS", got["write_root"])
	}
	root := strings.Split(got["root"], ",")
	sort.Strings(root)
	for _, n := range root {
		switch n {
		case "dev", "proc", "usr", "lib", "lib64", "bin", "sbin", "etc", "tmp", "work", "root", "home":
		default:
			t.Errorf("unexpected entry /%s in the jail's root", n)
		}
	}
	t.Logf("jail root: %v", root)
}

func TestStartReportsSetupErrors(t *testing.T) {
	SelfExe, _ = os.Executable()
	spec := testSpec(t)
	spec.Binds = append(spec.Binds, Bind{Path: "/nonexistent/file"})
	_, err := Start(spec, nil, nil, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/file") {
		t.Fatalf("err = %v, want the failing bind named", err)
	}
}

// A VM name of the maximum length (63) gives a jail name past the
// kernel's hostname limit: the hostname is cut, the start works.
func TestStartLongName(t *testing.T) {
	SelfExe, _ = os.Executable()
	spec := testSpec(t)
	spec.Name = "vm-" + strings.Repeat("n", 63)
	var out bytes.Buffer
	cmd, err := Start(spec, nil, &out, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if !strings.Contains(out.String(), "hostname="+spec.Name[:64]+"\n") {
		t.Fatalf("hostname not cut to 64 bytes:\n%s", out.String())
	}
}

func TestStartPlaceError(t *testing.T) {
	SelfExe, _ = os.Executable()
	spec := testSpec(t)
	_, err := Start(spec, nil, nil, nil, func(int) error { return fmt.Errorf("no cgroup") })
	if err == nil || !strings.Contains(err.Error(), "no cgroup") {
		t.Fatalf("err = %v", err)
	}
}

func TestValidate(t *testing.T) {
	ok := Spec{Name: "a", Root: "/r", Path: "/p", Args: []string{"p"}, UID: 1, GID: 1, Seccomp: "vmm", Binds: []Bind{{Path: "/p"}}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Spec){
		"root uid":     func(s *Spec) { s.UID = 0 },
		"root gid":     func(s *Spec) { s.GID = 0 },
		"no seccomp":   func(s *Spec) { s.Seccomp = "" },
		"relative":     func(s *Spec) { s.Path = "p" },
		"unclean":      func(s *Spec) { s.Binds = append(s.Binds, Bind{Path: "/a/../b"}) },
		"bind /":       func(s *Spec) { s.Binds = append(s.Binds, Bind{Path: "/"}) },
		"bind proc":    func(s *Spec) { s.Binds = append(s.Binds, Bind{Path: "/proc/1/root"}) },
		"root /":       func(s *Spec) { s.Root = "/" },
		"unbound":      func(s *Spec) { s.Binds = nil },
		"abs symlink":  func(s *Spec) { s.Symlinks = []Symlink{{Path: "/lib", Target: "/usr/lib"}} },
		"up symlink":   func(s *Spec) { s.Symlinks = []Symlink{{Path: "/lib", Target: "../x"}} },
		"no args":      func(s *Spec) { s.Args = nil },
		"slash name":   func(s *Spec) { s.Name = "a/b" },
		"huge name":    func(s *Spec) { s.Name = strings.Repeat("n", 256) },
		"many payload": func(s *Spec) { s.NFiles = 1000 },
	} {
		s := ok
		s.Binds = append([]Bind(nil), ok.Binds...)
		mut(&s)
		if s.Validate() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

var _ = exec.Command
