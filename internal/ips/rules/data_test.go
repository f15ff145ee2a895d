package rules

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/shareddata"
)

// sharedData returns ../shared/data relative to the module root (the
// directory holding go.mod), where CI and developers keep the test data.
func sharedData(tb testing.TB, sub string) string {
	tb.Helper()
	p, err := shareddata.Dir(sub)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// etOpen loads every ET Open rule file with the ET classification.config.
func etOpen(tb testing.TB) (*Set, Stats, int) {
	dir := sharedData(tb, "et-open")
	cfg, err := os.ReadFile(filepath.Join(dir, "classification.config"))
	if err != nil {
		tb.Fatal(err)
	}
	classes, err := ParseClassifications(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.rules"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no rule files in %s: %v", dir, err)
	}
	l := NewLoader(&Options{Classes: classes})
	active := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			for _, a := range []string{"alert ", "drop ", "reject ", "pass "} {
				if strings.HasPrefix(line, a) {
					active++
				}
			}
		}
		if err := l.Add(bytes.NewReader(data), filepath.Base(f)); err != nil {
			tb.Fatalf("%s: %v", f, err)
		}
	}
	set, st := l.Finish()
	return set, st, active
}

func TestLoadETOpen(t *testing.T) {
	set, st, active := etOpen(t)
	if active != 24827 {
		t.Logf("active rules counted: %d (COUNTS.md says 24827)", active)
	}
	pct := 100 * float64(st.Loaded) / float64(active)
	t.Logf("ET Open: %d of %d active rules loaded (%.2f%%); skipped %d, errors %d, duplicates %d",
		st.Loaded, active, pct, st.SkippedTotal(), st.ErrorTotal(), st.Duplicates)
	for i, rc := range Top(st.Skipped) {
		if i < 25 {
			t.Logf("  skipped %5d  %s", rc.Count, rc.Reason)
		}
	}
	for _, rc := range Top(st.Errors) {
		t.Logf("  error   %5d  %s", rc.Count, rc.Reason)
	}
	if st.Rules != active {
		t.Errorf("loader saw %d rules, the files hold %d active rules", st.Rules, active)
	}
	if pct < 90 {
		t.Errorf("only %.2f%% of ET Open loaded, want at least 90%%", pct)
	}
	withFast := 0
	for _, r := range set.Rules {
		if r.Fast != nil {
			withFast++
		}
	}
	t.Logf("rules with a fast pattern: %d of %d", withFast, len(set.Rules))
}

func TestLoadSuricataVerify(t *testing.T) {
	dir := sharedData(t, "suricata-verify")
	cases, err := filepath.Glob(filepath.Join(dir, "*", "test.rules"))
	if err != nil || len(cases) == 0 {
		t.Fatalf("no suricata-verify cases in %s", dir)
	}
	for _, f := range cases {
		name := filepath.Base(filepath.Dir(f))
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			set, st := Load(bytes.NewReader(data), nil)
			if st.ErrorTotal() != 0 || st.SkippedTotal() != 0 {
				t.Errorf("%d errors, %d skipped: %v", st.ErrorTotal(), st.SkippedTotal(), st.Warnings)
			}
			if st.Loaded == 0 {
				t.Errorf("no rules loaded")
			}
			// Every sid that expect.json names must be loaded.
			exp, err := os.ReadFile(filepath.Join(filepath.Dir(f), "expect.json"))
			if err != nil {
				t.Fatal(err)
			}
			var e struct {
				Checks []struct {
					Filter struct {
						Match map[string]any `json:"match"`
					} `json:"filter"`
					Match map[string]any `json:"match"`
				} `json:"checks"`
			}
			if err := json.Unmarshal(exp, &e); err != nil {
				t.Fatalf("expect.json: %v", err)
			}
			for _, c := range e.Checks {
				for _, m := range []map[string]any{c.Match, c.Filter.Match} {
					if sid, ok := m["alert.signature_id"].(float64); ok && set.Lookup(1, uint32(sid)) == nil {
						t.Errorf("sid %v named in expect.json is not loaded", sid)
					}
				}
			}
		})
	}
}

func BenchmarkLoadETOpen(b *testing.B) {
	for i := 0; i < b.N; i++ {
		_, st, _ := etOpen(b)
		if st.Loaded == 0 {
			b.Fatal("nothing loaded")
		}
	}
}
