package api

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// A finding is raised as an event once, when it appears; it is raised
// again only after a scan without it.
func TestEventsRaisedOnce(t *testing.T) {
	var log bytes.Buffer
	ev := NewEvents(&log, "")
	scan := func(findings ...string) int {
		r := &ScanReport{Time: time.Unix(1, 0)}
		for _, f := range findings {
			r.Findings = append(r.Findings, ScanFinding{Kind: "syscall_hook", Summary: f})
		}
		return len(ev.Report("web", "periodic", r))
	}
	for i, c := range []struct {
		findings []string
		want     int
	}{
		{nil, 0},
		{[]string{"a"}, 1},
		{[]string{"a"}, 0},
		{[]string{"a", "b"}, 1},
		{nil, 0},
		{[]string{"a"}, 1},
	} {
		if got := scan(c.findings...); got != c.want {
			t.Fatalf("scan %d: %d new events, want %d", i, got, c.want)
		}
	}
	if n := strings.Count(log.String(), "\n"); n != 3 {
		t.Fatalf("%d events logged, want 3:\n%s", n, log.String())
	}
	if !strings.Contains(log.String(), `"vm":"web","kind":"syscall_hook","summary":"b","scan":"periodic"`) {
		t.Fatalf("event format:\n%s", log.String())
	}
	// Another VM's findings are its own.
	r := &ScanReport{Findings: []ScanFinding{{Kind: "syscall_hook", Summary: "a"}}}
	if n := len(ev.Report("db", "on-demand", r)); n != 1 {
		t.Fatalf("db: %d new", n)
	}
}
