package engine

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/ips/rules"
	"github.com/bulwark-project/bulwark/internal/shareddata"
)

// sharedData returns the shared test data set sub (never copied into the
// repository); the test is skipped when it is absent.
func sharedData(tb testing.TB, sub string) string {
	tb.Helper()
	p, err := shareddata.Dir(sub)
	if err != nil {
		tb.Skip(err)
	}
	return p
}

func classes(tb testing.TB) rules.Classifications {
	b, err := os.ReadFile(filepath.Join(sharedData(tb, "et-open"), "classification.config"))
	if err != nil {
		tb.Fatal(err)
	}
	c, err := rules.ParseClassifications(b)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

type verifyCase struct {
	Name        string `json:"name"`
	Pcap        string `json:"pcap"`
	SimulateIPS bool   `json:"simulate_ips"`
	Checks      []struct {
		Count int            `json:"count"`
		Match map[string]any `json:"match"`
	} `json:"checks"`
}

// runVerifyCase replays one suricata-verify case and returns its EVE
// events and a list of failed checks (empty when it matches exactly).
func runVerifyCase(t *testing.T, dir string, cls rules.Classifications) (events []map[string]any, failures []string, err error) {
	var vc verifyCase
	b, err := os.ReadFile(filepath.Join(dir, "expect.json"))
	if err != nil {
		return nil, nil, err
	}
	if err := json.Unmarshal(b, &vc); err != nil {
		return nil, nil, err
	}
	rf, err := os.Open(filepath.Join(dir, "test.rules"))
	if err != nil {
		return nil, nil, err
	}
	defer rf.Close()
	l := rules.NewLoader(&rules.Options{Classes: cls, Disabled: Disabled})
	if err := l.Add(rf, "test.rules"); err != nil {
		return nil, nil, err
	}
	set, st := l.Finish()
	if st.SkippedTotal()+st.ErrorTotal() > 0 {
		failures = append(failures, fmt.Sprintf("rules not loaded: %v", st.Warnings))
	}
	e, err := New(set, cls, nil)
	if err != nil {
		return nil, nil, err
	}
	pf, err := os.Open(filepath.Join(dir, vc.Pcap))
	if err != nil {
		return nil, nil, err
	}
	defer pf.Close()
	var out bytes.Buffer
	ew := NewEVEWriter(&out, EVEOptions{Packet: true, Ether: true, Inline: vc.SimulateIPS, PktSrc: "wire/pcap"})
	if _, err := Replay(bufio.NewReader(pf), NewDetector(e, Config{}), ew); err != nil {
		return nil, nil, err
	}
	for _, line := range bytes.Split(out.Bytes(), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var ev map[string]any
		if err := json.Unmarshal(line, &ev); err != nil {
			return nil, nil, fmt.Errorf("eve line %q: %w", line, err)
		}
		events = append(events, ev)
	}
	for _, c := range vc.Checks {
		n := 0
		for _, ev := range events {
			if eveMatch(ev, c.Match) {
				n++
			}
		}
		if n != c.Count {
			m, _ := json.Marshal(c.Match)
			if len(m) > 160 {
				m = append(m[:160], "..."...)
			}
			failures = append(failures, fmt.Sprintf("%s: got %d, want %d", m, n, c.Count))
		}
	}
	return events, failures, nil
}

// eveMatch applies a suricata-verify filter: every key (a dotted path)
// must hold the value; "not-has-key" names a key that must be absent; a
// path ending in ".__len" compares the length of the value.
func eveMatch(ev map[string]any, match map[string]any) bool {
	for k, want := range match {
		if k == "not-has-key" {
			if _, ok := lookupPath(ev, want.(string)); ok {
				return false
			}
			continue
		}
		if base, ok := strings.CutSuffix(k, ".__len"); ok {
			v, ok := lookupPath(ev, base)
			if !ok {
				return false
			}
			n := -1
			switch x := v.(type) {
			case string:
				n = len(x)
			case []any:
				n = len(x)
			case map[string]any:
				n = len(x)
			}
			if float64(n) != want.(float64) {
				return false
			}
			continue
		}
		v, ok := lookupPath(ev, k)
		if !ok || fmt.Sprint(v) != fmt.Sprint(want) {
			return false
		}
	}
	return true
}

func lookupPath(ev map[string]any, path string) (any, bool) {
	var cur any = ev
	for _, part := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// verifyMinExact is the number of suricata-verify cases that match
// exactly today: a regression guard, raise it when more pass.
const verifyMinExact = 30

// TestSuricataVerify replays every suricata-verify case through the
// engine the way `bulwark ips replay` does and compares the alerts with
// the ones Suricata produced (expect.json's filters).
func TestSuricataVerify(t *testing.T) {
	root := sharedData(t, "suricata-verify")
	cls := classes(t)
	dirs, _ := filepath.Glob(filepath.Join(root, "*", "expect.json"))
	sort.Strings(dirs)
	exact := 0
	var failed []string
	for _, p := range dirs {
		dir := filepath.Dir(p)
		name := filepath.Base(dir)
		_, failures, err := runVerifyCase(t, dir, cls)
		if err != nil {
			failures = append(failures, "error: "+err.Error())
		}
		if len(failures) == 0 {
			exact++
			continue
		}
		failed = append(failed, name)
		t.Logf("%s: %s", name, strings.Join(failures, "; "))
	}
	t.Logf("suricata-verify: %d of %d cases match exactly; differing: %s", exact, len(dirs), strings.Join(failed, ", "))
	if exact < verifyMinExact {
		t.Errorf("%d cases match exactly, fewer than the %d reached before", exact, verifyMinExact)
	}
}
