package profile

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/vmi/kimage"
	"github.com/bulwark-project/bulwark/internal/vmi/kimage/kimagetest"
)

var (
	debianOnce    sync.Once
	debianProfile *Profile
	debianErr     error
	debianTime    time.Duration
)

// debian derives the installed guest kernel's profile once per test binary.
func debian(t *testing.T) *Profile {
	t.Helper()
	path := kimagetest.Path(t)
	debianOnce.Do(func() {
		start := time.Now()
		debianProfile, debianErr = Derive(path)
		debianTime = time.Since(start)
	})
	if debianErr != nil {
		t.Fatalf("Derive(%s): %v", path, debianErr)
	}
	return debianProfile
}

// TestDebianKernelProfile derives the profile of the installed Debian cloud
// kernel with no System.map and checks it against what is known about
// x86-64 kernels.
func TestDebianKernelProfile(t *testing.T) {
	p := debian(t)
	t.Logf("Derive: %v (%s, %d symbols)", debianTime, p.Release, p.Kallsyms.Len())
	t.Logf("banner: %s", p.Banner)

	_, vmlinux := kimagetest.Vmlinux(t)
	noteID, err := kimage.BuildID(vmlinux)
	if err != nil {
		t.Fatal(err)
	}
	if p.BuildID == "" || p.BuildID != noteID {
		t.Errorf("BuildID = %q, ELF note has %q", p.BuildID, noteID)
	}
	if p.Kallsyms.Len() < 50_000 {
		t.Errorf("only %d symbols", p.Kallsyms.Len())
	}
	if err := p.Validate(); err != nil {
		t.Error(err)
	}
	inText := func(name string) uint64 {
		t.Helper()
		a, ok := p.Symbols[name]
		if !ok {
			t.Fatalf("symbol %s missing", name)
		}
		if a>>28 != 0xffffffff8 {
			t.Errorf("%s = %#x, not a kernel image address (0xffffffff8xxxxxxx)", name, a)
		}
		return a
	}
	for _, n := range []string{"_text", "init_task", "sys_call_table", "idt_table", "modules",
		"__start_rodata", "__end_rodata", "init_top_pgt", "page_offset_base", "linux_banner", "core_pattern"} {
		inText(n)
	}
	if s, e := inText("_stext"), inText("_etext"); s >= e {
		t.Errorf("_stext %#x >= _etext %#x", s, e)
	}

	// Syscall handlers name themselves.
	for _, h := range []string{"__x64_sys_read", "__x64_sys_write", "__x64_sys_execve"} {
		a, ok := p.Symbol(h)
		if !ok {
			t.Fatalf("%s missing", h)
		}
		if name, off, ok := p.Nearest(a); !ok || name != h || off != 0 {
			t.Errorf("Nearest(%s) = %s+%#x %v", h, name, off, ok)
		}
	}

	// sys_call_table from the image: every entry a text address, read(2) is
	// slot 0, and the count is the x86-64 syscall count (~450 on 6.1).
	if n := len(p.SyscallTable); n < 300 || n > 1024 {
		t.Errorf("sys_call_table has %d entries", n)
	} else {
		for nr, want := range map[int]string{0: "__x64_sys_read", 1: "__x64_sys_write", 59: "__x64_sys_execve"} {
			if name, off, _ := p.Nearest(p.SyscallTable[nr]); name != want || off != 0 {
				t.Errorf("sys_call_table[%d] -> %s+%#x, want %s", nr, name, off, want)
			}
		}
		t.Logf("sys_call_table: %d entries", len(p.SyscallTable))
	}

	size := p.Sizes["task_struct"]
	if size < 1024 || size > 64<<10 {
		t.Errorf("sizeof(task_struct) = %d", size)
	}
	for _, f := range []string{"task_struct.tasks", "task_struct.pid", "task_struct.tgid", "task_struct.comm",
		"task_struct.real_parent", "task_struct.parent", "task_struct.mm", "task_struct.cred", "task_struct.__state"} {
		o, ok := p.Offset(f)
		if !ok || o >= size {
			t.Errorf("%s = %d (present %v), want inside task_struct (%d bytes)", f, o, ok, size)
		}
	}
	if o := p.Offsets["task_struct.tasks"]; o == 0 {
		t.Error("task_struct.tasks at offset 0")
	}
	if o := p.Offsets["task_struct.pid"]; o == 0 {
		t.Error("task_struct.pid at offset 0")
	}
	if p.Sizes["task_struct.comm"] != 16 {
		t.Errorf("sizeof(task_struct.comm) = %d, want 16 (TASK_COMM_LEN)", p.Sizes["task_struct.comm"])
	}
	if p.Offsets["task_struct.tgid"] != p.Offsets["task_struct.pid"]+4 {
		t.Errorf("tgid (%d) does not follow pid (%d)", p.Offsets["task_struct.tgid"], p.Offsets["task_struct.pid"])
	}
	if p.Offsets["list_head.next"] != 0 || p.Offsets["list_head.prev"] != 8 {
		t.Errorf("list_head next/prev = %d/%d", p.Offsets["list_head.next"], p.Offsets["list_head.prev"])
	}
	if p.Offsets["module.mkobj.kobj.entry"] != p.Offsets["module.mkobj"]+p.Offsets["module_kobject.kobj"]+p.Offsets["kobject.entry"] {
		t.Error("module.mkobj.kobj.entry is not the sum of its parts")
	}
	js, _ := json.Marshal(map[string]any{"offsets": p.Offsets, "sizes": p.Sizes, "symbols": len(p.Symbols)})
	t.Logf("%s", js)
}

// TestDebianKernelCache checks that the cache round-trips and that a second
// LoadOrDerive is fast.
func TestDebianKernelCache(t *testing.T) {
	p := debian(t)
	path := kimagetest.Path(t)
	dir := filepath.Join(t.TempDir(), "profiles")
	start := time.Now()
	first, err := LoadOrDerive(dir, path)
	if err != nil {
		t.Fatal(err)
	}
	cold := time.Since(start)
	start = time.Now()
	second, err := LoadOrDerive(dir, path)
	if err != nil {
		t.Fatal(err)
	}
	warm := time.Since(start)
	t.Logf("LoadOrDerive: cold %v, cached %v", cold, warm)
	if first.BuildID != p.BuildID || second.BuildID != p.BuildID {
		t.Fatal("build ids differ")
	}
	st, err := os.Stat(filepath.Join(dir, p.BuildID+".json"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("cache file mode %v, want 0600", st.Mode().Perm())
	}
	t.Logf("cache file %d bytes", st.Size())
	if second.Kallsyms.Len() != p.Kallsyms.Len() || len(second.Offsets) != len(p.Offsets) || second.Release != p.Release {
		t.Error("cached profile differs from the derived one")
	}
	a, _ := p.Symbol("__x64_sys_read")
	if name, _, _ := second.Nearest(a); name != "__x64_sys_read" {
		t.Errorf("cached Nearest = %s", name)
	}
	if warm >= cold {
		t.Errorf("cached LoadOrDerive took %v, cold %v: the cache is not helping", warm, cold)
	}
}

func TestDebianJumpSites(t *testing.T) {
	p := debian(t)
	if len(p.JumpSites) < 1000 {
		t.Fatalf("%d jump sites", len(p.JumpSites))
	}
	st, et := p.Symbols["_stext"], p.Symbols["_etext"]
	for i, s := range p.JumpSites[:100] {
		if s.Code < st || s.Code >= et || s.Target < st || s.Target >= et {
			t.Fatalf("site %d: %#x -> %#x outside text", i, s.Code, s.Target)
		}
	}
	t.Logf("%d jump sites", len(p.JumpSites))
}
