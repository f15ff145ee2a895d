package profile

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/vmi/kallsyms"
	"github.com/bulwark-project/bulwark/internal/vmi/kimage"
)

const testID = "0123456789abcdef0123456789abcdef01234567"

// syntheticProfile has every required field, with made-up values.
func syntheticProfile(t *testing.T) *Profile {
	t.Helper()
	p := &Profile{FormatVersion: FormatVersion, BuildID: testID, Release: "6.1.0-test",
		Symbols: map[string]uint64{}, Offsets: map[string]uint64{}, Sizes: map[string]uint64{}}
	var syms []kallsyms.Symbol
	addr := uint64(0xffffffff81000000)
	for _, w := range wantedSymbols {
		p.Symbols[w.alts[0]] = addr
		syms = append(syms, kallsyms.Symbol{Name: w.alts[0], Addr: addr, Type: 'T'})
		addr += 0x100
	}
	for i, w := range wantedOffsets {
		p.Offsets[w.alts[0]] = uint64(8 * i)
		p.Sizes[w.alts[0]] = 8
	}
	for _, w := range wantedSizes {
		p.Sizes[w.alts[0]] = 64
	}
	p.SyscallTable = []uint64{p.Symbols["_text"], p.Symbols["_stext"]}
	tab, err := kallsyms.New(syms)
	if err != nil {
		t.Fatal(err)
	}
	p.Kallsyms = tab
	return p
}

func TestSaveLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	p := syntheticProfile(t)
	if err := Save(dir, p); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, testID+".json"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("cache file: %v, mode %v", err, st.Mode())
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("cache dir mode %v", st.Mode().Perm())
	}
	q, err := Load(dir, testID)
	if err != nil {
		t.Fatal(err)
	}
	if q.Release != p.Release || len(q.Offsets) != len(p.Offsets) || q.Kallsyms.Len() != p.Kallsyms.Len() {
		t.Error("loaded profile differs")
	}
	if a, ok := q.Symbol("init_task"); !ok || a != p.Symbols["init_task"] {
		t.Errorf("Symbol(init_task) = %#x %v", a, ok)
	}
	if name, off, ok := q.Nearest(p.Symbols["init_task"] + 4); !ok || name != "init_task" || off != 4 {
		t.Errorf("Nearest = %s+%d %v", name, off, ok)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("cache dir holds %d entries, want only the profile (no temporary files)", len(entries))
	}
}

func TestLoadRejects(t *testing.T) {
	dir := t.TempDir()
	write := func(p *Profile) {
		data, _ := json.Marshal(p)
		os.WriteFile(filepath.Join(dir, testID+".json"), data, 0o600)
	}
	if _, err := Load(dir, testID); !IsNotCached(err) {
		t.Errorf("missing file: %v", err)
	}
	for name, mutate := range map[string]func(p *Profile){
		"old version":    func(p *Profile) { p.FormatVersion = 0 },
		"other build id": func(p *Profile) { p.BuildID = strings.Repeat("ab", 20) },
		"missing symbol": func(p *Profile) { delete(p.Symbols, "init_task") },
		"missing offset": func(p *Profile) { delete(p.Offsets, "task_struct.tasks") },
		"missing size":   func(p *Profile) { delete(p.Sizes, "task_struct") },
		"no kallsyms":    func(p *Profile) { p.Kallsyms = nil },
		"no syscalls":    func(p *Profile) { p.SyscallTable = nil },
		"upper-case hex": func(p *Profile) { p.BuildID = strings.ToUpper(testID) },
	} {
		p := syntheticProfile(t)
		mutate(p)
		write(p)
		if _, err := Load(dir, testID); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	os.WriteFile(filepath.Join(dir, testID+".json"), []byte(`{"format_version":1,`), 0o600)
	if _, err := Load(dir, testID); err == nil {
		t.Error("truncated JSON accepted")
	}
	for _, id := range []string{"../../etc/passwd", "", "abc", "0123456789abcdef/x", strings.Repeat("a", 200)} {
		if _, err := Path(dir, id); err == nil {
			t.Errorf("Path accepted build id %q", id)
		}
	}
}

func TestDeriveErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Derive(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file accepted")
	}
	junk := filepath.Join(dir, "junk")
	os.WriteFile(junk, []byte(strings.Repeat("x", 4096)), 0o600)
	if _, err := Derive(junk); err == nil || !strings.Contains(err.Error(), "not a bzImage") {
		t.Errorf("junk: %v", err)
	}
	if _, err := LoadOrDerive(filepath.Join(dir, "cache"), junk); err == nil {
		t.Error("LoadOrDerive accepted junk")
	}
	if _, err := Derive(dir); err == nil || !strings.Contains(err.Error(), "regular file") {
		t.Errorf("directory: %v", err)
	}
}

func TestBanner(t *testing.T) {
	img := []byte("\x00xxLinux version %s (%s)\x00yyLinux version 6.1.0-56-cloud-amd64 (debian-kernel@lists.debian.org) #1 SMP\n\x00zz")
	b, rel, err := banner(img, nil, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if rel != "6.1.0-56-cloud-amd64" || !strings.HasSuffix(b, "#1 SMP") {
		t.Errorf("banner %q release %q", b, rel)
	}
	for _, bad := range []string{"no banner here", "Linux version 6.1\x01bad\x00", "Linux version 6.1 unterminated"} {
		if _, _, err := banner([]byte(bad), kimage.Segments{}, 0, false); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
