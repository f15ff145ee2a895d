package vmcoreinfo

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
)

// sample is a VMCOREINFO modelled on a Debian 6.1 cloud kernel's, with
// KASLR: KERNELOFFSET 0x1c000000 and the image loaded at 48 MiB physical,
// so phys_base = 0x3000000 - (0xffffffff9d000000 - 0xffffffff80000000)
// = -0x1a000000.
func sample(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/debian-6.1.0-28-cloud-amd64.txt")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseSample(t *testing.T) {
	info, err := Parse(sample(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.OSRelease != "6.1.0-28-cloud-amd64" || info.PageSize != 4096 || info.BuildID != "8c4d02a6e1f3b7950c2d4e6f8a1b3c5d7e9f0a12" {
		t.Errorf("header: %q %d %q", info.OSRelease, info.PageSize, info.BuildID)
	}
	if info.KernelOffset() != 0x1c000000 {
		t.Errorf("KernelOffset = %#x", info.KernelOffset())
	}
	if info.PhysBase() != -0x1a000000 {
		t.Errorf("PhysBase = %d", info.PhysBase())
	}
	if v, ok := info.Symbol("init_top_pgt"); !ok || v != 0xffffffff9ea10000 {
		t.Errorf("init_top_pgt = %#x, %v", v, ok)
	}
	if v, ok := info.Symbol("_stext"); !ok || v != 0xffffffff9d000000 {
		t.Errorf("_stext = %#x, %v", v, ok)
	}
	if _, ok := info.Symbol("nope"); ok {
		t.Error("unknown symbol found")
	}
	if v, _ := info.Number("PAGE_BUDDY_MAPCOUNT_VALUE"); v != -129 {
		t.Errorf("PAGE_BUDDY_MAPCOUNT_VALUE = %d", v)
	}
	if v, ok := info.Offset("pglist_data.node_start_pfn"); !ok || v != 171560 {
		t.Errorf("pglist_data.node_start_pfn = %d", v)
	}
	if v, _ := info.Size("page"); v != 64 {
		t.Errorf("SIZE(page) = %d", v)
	}
	if v, _ := info.Length("zone.free_area"); v != 11 {
		t.Errorf("LENGTH(zone.free_area) = %d", v)
	}
	if info.LA57() {
		t.Error("LA57")
	}
	if info.Skipped != 0 {
		t.Errorf("Skipped = %d", info.Skipped)
	}
	if err := info.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	// As in memory: NUL-terminated, garbage after.
	mem := append(append(sample(t), 0), "OSRELEASE=garbage\n"...)
	info2, err := Parse(mem)
	if err != nil || len(info2.Symbols) != len(info.Symbols) || info2.OSRelease != info.OSRelease {
		t.Errorf("NUL-terminated: %v", err)
	}
}

func TestParseMalformed(t *testing.T) {
	text := strings.Join([]string{
		"OSRELEASE=6.1.0-28-cloud-amd64",
		"no equals sign",
		"=value without key",
		"SYMBOL(x)=not-hex",
		"SYMBOL(y)=0x1234",            // the kernel prints no 0x
		"SYMBOL(z)=11112222333344445", // 17 digits
		"NUMBER(a)=-12",
		"NUMBER(b)=0x10",
		"NUMBER(c)=1.5",
		"SIZE(d)=-1",
		"OFFSET(e.f)=12",
		"LENGTH(g)=x",
		"SYMBOL()=1234",
		"SYMBOL(bad name)=1234",
		"lower(case)=1",
		"WEIRD(thing)=kept",
		"CRASHTIME=1700000000",
		"PAGESIZE=4k",
		"KERNELOFFSET=",
		"BUILD-ID=xyz",
		"TAB\tKEY=1",
		"HIGH=\xff",
		strings.Repeat("K", MaxKey+1) + "=1",
		"LONG=" + strings.Repeat("v", MaxValue+1),
		"",
		"",
	}, "\n")
	info, err := Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if info.Skipped != 18 {
		t.Errorf("Skipped = %d, want 18", info.Skipped)
	}
	if info.Numbers["a"] != -12 || info.Numbers["b"] != 16 || info.Offsets["e.f"] != 12 {
		t.Errorf("good lines: %v %v", info.Numbers, info.Offsets)
	}
	if info.Values["WEIRD(thing)"] != "kept" || info.Values["CRASHTIME"] != "1700000000" {
		t.Errorf("Values = %v", info.Values)
	}
	if len(info.Symbols) != 0 || info.PageSize != 0 || info.BuildID != "" {
		t.Errorf("malformed values stored: %v %d %q", info.Symbols, info.PageSize, info.BuildID)
	}
	if err := info.Validate(); err == nil {
		t.Error("Validate accepted a text without PAGESIZE")
	}
}

func TestParseErrors(t *testing.T) {
	cases := map[string][]byte{
		"no OSRELEASE":        []byte("PAGESIZE=4096\nSYMBOL(init_top_pgt)=ffffffff9ea10000\n"),
		"empty OSRELEASE":     []byte("OSRELEASE=\nPAGESIZE=4096\n"),
		"OSRELEASE cut off":   []byte("PAGESIZE=4096\n\x00OSRELEASE=6.1.0\n"),
		"too long":            append([]byte("OSRELEASE=6.1\n"), bytes.Repeat([]byte("A=1\n"), MaxText/4)...),
		"too many lines":      append([]byte("OSRELEASE=6.1\n"), bytes.Repeat([]byte("\n"), MaxLines)...),
		"conflicting":         []byte("OSRELEASE=6.1\nNUMBER(phys_base)=0\nNUMBER(phys_base)=-4096\n"),
		"conflicting release": []byte("OSRELEASE=6.1\nOSRELEASE=6.2\n"),
	}
	for name, text := range cases {
		if _, err := Parse(text); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := Parse([]byte("PAGESIZE=4096\n")); !errors.Is(err, ErrNoOSRelease) {
		t.Errorf("no OSRELEASE: %v", err)
	}
	info, err := Parse([]byte("OSRELEASE=6.1\nPAGESIZE=4096\nPAGESIZE=4096\n"))
	if err != nil || info.PageSize != 4096 {
		t.Errorf("identical repeat: %v", err)
	}
}

func TestValidate(t *testing.T) {
	edits := map[string][2]string{
		"page size":         {"PAGESIZE=4096", "PAGESIZE=65536"},
		"format string":     {"OSRELEASE=6.1.0-28-cloud-amd64", "OSRELEASE=%s"},
		"release letters":   {"OSRELEASE=6.1.0-28-cloud-amd64", "OSRELEASE=linux"},
		"release space":     {"OSRELEASE=6.1.0-28-cloud-amd64", "OSRELEASE=6.1 x"},
		"no kernel offset":  {"KERNELOFFSET=1c000000", ""},
		"huge offset":       {"KERNELOFFSET=1c000000", "KERNELOFFSET=40000000"},
		"l5 value":          {"NUMBER(pgtable_l5_enabled)=0", "NUMBER(pgtable_l5_enabled)=2"},
		"pgd outside image": {"SYMBOL(init_top_pgt)=ffffffff9ea10000", "SYMBOL(init_top_pgt)=ffff888000000000"},
	}
	for name, e := range edits {
		text := strings.Replace(string(sample(t)), e[0], e[1], 1)
		info, err := Parse([]byte(text))
		if err != nil {
			continue // also a rejection
		}
		if err := info.Validate(); err == nil {
			t.Errorf("%s: Validate accepted", name)
		}
	}
	// Without either page-table symbol.
	text := strings.Replace(strings.Replace(string(sample(t)), "SYMBOL(init_top_pgt)", "SYMBOL(x1)", 1), "SYMBOL(swapper_pg_dir)", "SYMBOL(x2)", 1)
	info, err := Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if err := info.Validate(); err == nil {
		t.Error("no page-table symbol: Validate accepted")
	}
	// swapper_pg_dir alone is enough.
	info, _ = Parse([]byte(strings.Replace(string(sample(t)), "SYMBOL(init_top_pgt)", "SYMBOL(x1)", 1)))
	if err := info.Validate(); err != nil {
		t.Errorf("swapper_pg_dir only: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(sample(f))
	f.Add([]byte("OSRELEASE=6.1\nNUMBER(x)=-1\nSYMBOL(y)=ff\n\x00junk"))
	f.Add([]byte("OSRELEASE=6.1\nOSRELEASE=6.1\nSIZE(a.b)=1\nWEIRD(c)=d"))
	f.Fuzz(func(t *testing.T, text []byte) {
		info, err := Parse(text)
		if err != nil {
			return
		}
		if info.OSRelease == "" || len(info.OSRelease) > MaxValue {
			t.Fatalf("OSRelease %q", info.OSRelease)
		}
		n := len(info.Symbols) + len(info.Numbers) + len(info.Sizes) + len(info.Offsets) + len(info.Lengths) + len(info.Values)
		if n+info.Skipped > MaxLines {
			t.Fatalf("%d entries and %d skipped from at most %d lines", n, info.Skipped, MaxLines)
		}
		_ = info.Validate()
	})
}
