package kallsyms

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/vmi/kimage/kimagetest"
)

var (
	debianOnce  sync.Once
	debianTable *Table
	debianErr   error
)

func debianKallsyms(t *testing.T) *Table {
	t.Helper()
	_, vmlinux := kimagetest.Vmlinux(t)
	debianOnce.Do(func() {
		start := time.Now()
		debianTable, debianErr = FromImage(vmlinux)
		t.Logf("FromImage: %d symbols in %v", debianTable.Len(), time.Since(start))
	})
	if debianErr != nil {
		t.Fatalf("FromImage: %v", debianErr)
	}
	return debianTable
}

// TestDebianKernel decodes the installed guest kernel's kallsyms with no
// symbol file and checks well-known symbols.
func TestDebianKernel(t *testing.T) {
	tab := debianKallsyms(t)
	if tab.Len() < 50_000 {
		t.Fatalf("only %d symbols", tab.Len())
	}
	l := tab.Layout()
	t.Logf("layout: %d symbols, %d-byte markers, %v, reordered=%v, seqs_of_names=%v, relative_base=%#x",
		l.NumSyms, l.MarkerSize, l.Mode, l.Reordered, l.SeqsOfNames.Size != 0, l.RelativeBase)
	t.Logf("token table at %#x, names at %#x", l.TokenTable.VA, l.Names.VA)

	text := func(name string) uint64 {
		t.Helper()
		a, _, ok := tab.Lookup(name)
		if !ok {
			t.Fatalf("%s missing", name)
		}
		if a>>28 != 0xffffffff8 {
			t.Errorf("%s = %#x, not in the kernel image range 0xffffffff8xxxxxxx", name, a)
		}
		return a
	}
	stext, etext := text("_stext"), text("_etext")
	if stext >= etext {
		t.Errorf("_stext %#x >= _etext %#x", stext, etext)
	}
	rodata, erodata := text("__start_rodata"), text("__end_rodata")
	for _, n := range []string{"_text", "init_task", "sys_call_table", "idt_table", "modules",
		"init_top_pgt", "page_offset_base", "core_pattern", "linux_banner", "__x64_sys_read"} {
		text(n)
	}
	if a := text("sys_call_table"); a < rodata || a >= erodata {
		t.Errorf("sys_call_table %#x not in .rodata [%#x, %#x)", a, rodata, erodata)
	}
	if l.TokenTable.VA < rodata || l.TokenTable.VA >= erodata {
		t.Errorf("kallsyms_token_table at %#x is not in .rodata", l.TokenTable.VA)
	}
	for _, n := range []string{"__x64_sys_read", "__x64_sys_openat", "init_task", "x64_sys_call"} {
		a, _, ok := tab.Lookup(n)
		if !ok {
			if n == "x64_sys_call" {
				continue // only on kernels with the 2024 syscall-dispatch hardening
			}
			t.Fatalf("%s missing", n)
		}
		if got, off, ok := tab.Nearest(a); !ok || got != n || off != 0 {
			t.Errorf("Nearest(%s=%#x) = %s+%#x %v", n, a, got, off, ok)
		}
		if got, off, ok := tab.Nearest(a + 3); !ok || got != n || off != 3 {
			t.Errorf("Nearest(%s+3) = %s+%#x %v", n, got, off, ok)
		}
	}
	if _, typ, _ := tab.Lookup("init_task"); strings.IndexByte("Dd", typ) < 0 {
		t.Errorf("init_task has type %c, want data", typ)
	}
}
