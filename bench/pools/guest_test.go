package main

import (
	"strings"
	"testing"
)

func TestLastSpinReport(t *testing.T) {
	for _, c := range []struct {
		log  string
		want spinReport
		ok   bool
	}{
		{"", spinReport{}, false},
		{"spin 3 1.50\n", spinReport{3, 1.5}, true},
		{"boot\nspin 3 1.50\nspin 4 1.62\n", spinReport{4, 1.62}, true},
		{"spin 3 1.50\r\nspin 4 1.6", spinReport{3, 1.5}, true},  // the last line is cut short
		{"spin 3 1.50\nspin x 2.00\n", spinReport{3, 1.5}, true}, // a malformed one is skipped
		{"spin 3 1.50\nspin 4 2.000\nspin 5 .50\nspin 6 2.\nspin 07 1e3\n", spinReport{3, 1.5}, true},
		{"spin 3 1.50\nspin 4 2.00 extra\nspin -5 3.00\nspin 6  3.00\n", spinReport{3, 1.5}, true},
		{"spin 99999999999999999999 1.00\n", spinReport{}, false},
		{"xspin 3 1.50\n", spinReport{}, false},
		{"spin 3 1.50\n" + strings.Repeat("a", 100) + "\n", spinReport{3, 1.5}, true},
		{"spin 1" + strings.Repeat("0", 70) + " 1.00\n", spinReport{}, false},
	} {
		got, ok := lastSpinReport([]byte(c.log))
		if got != c.want || ok != c.ok {
			t.Errorf("lastSpinReport(%q) = %+v, %v; want %+v, %v", c.log, got, ok, c.want, c.ok)
		}
	}
}

func TestLoopRate(t *testing.T) {
	r, err := loopRate(spinReport{10, 5}, spinReport{30, 7}, 1000)
	if err != nil || r != 10000 {
		t.Errorf("loopRate = %v, %v; want 10000", r, err)
	}
	for _, bad := range [][2]spinReport{{{10, 5}, {9, 7}}, {{10, 5}, {12, 5}}} {
		if _, err := loopRate(bad[0], bad[1], 1000); err == nil {
			t.Errorf("loopRate(%+v) accepted", bad)
		}
	}
}

func TestScripts(t *testing.T) {
	if s := victimScript(2000); !strings.Contains(s, "-lt 2000") || !strings.Contains(s, `echo "spin $n $up"`) {
		t.Errorf("victim script:\n%s", s)
	}
	if s := attackerScript(3); strings.Count(s, "while :; do :; done") != 3 || !strings.Contains(s, hogMarker) {
		t.Errorf("attacker script:\n%s", s)
	}
}

// FuzzLastSpinReport: any console tail yields a report within bounds, or
// none, without panicking.
func FuzzLastSpinReport(f *testing.F) {
	for _, s := range []string{"", "spin 3 1.50\n", "x\nspin 4 2.00\r\nspin 5", "spin 1 1.00\n\n\n", "\nspin 0 0.00\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, log []byte) {
		r, ok := lastSpinReport(log)
		if !ok {
			if r != (spinReport{}) {
				t.Fatalf("no report but %+v", r)
			}
			return
		}
		if r.N > maxSpinCount || r.Uptime < 0 || r.Uptime > maxUptime {
			t.Fatalf("report out of bounds: %+v", r)
		}
	})
}
