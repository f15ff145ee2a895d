package ipssvc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/ips/engine"
	"github.com/bulwark-project/bulwark/internal/ips/rules"
	"github.com/bulwark-project/bulwark/internal/ipsstage"
	"github.com/bulwark-project/bulwark/internal/shareddata"
	"github.com/bulwark-project/bulwark/internal/store"
)

const testRules = `alert http any any -> any any (msg:"T uri"; http.uri; content:"/evil"; sid:1000001; rev:2;)
drop tcp any any -> any 7000 (msg:"T drop"; content:"bad"; sid:1000002; rev:1;)
alert smtp any any -> any any (msg:"T smtp"; content:"x"; sid:1000003; rev:1;)
alert tcp any any -> any any (msg:"T broken"; content:"x";
`

func newSvc(t *testing.T, dir string) (*Service, *store.Store, *ipsstage.Stage) {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	stage := ipsstage.New(ipsstage.Options{Log: log})
	t.Cleanup(stage.Close)
	svc, err := New(context.Background(), stage, st, filepath.Join(dir, "rules"), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	return svc, st, stage
}

// Rule files are kept, counted per file by reason, survive a restart,
// and a file that breaks the set is refused without changing anything.
func TestRuleFiles(t *testing.T) {
	dir := t.TempDir()
	svc, st, stage := newSvc(t, dir)
	if got := stage.Stats().Rules; got != 0 {
		t.Fatalf("%d rules before any file", got)
	}
	rep, err := svc.PutFile("test.rules", []byte(testRules))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rules != 4 || rep.Loaded != 2 || rep.Skipped["protocol smtp"] != 1 || len(rep.Errors) != 1 {
		t.Errorf("report %+v", rep)
	}
	if got := stage.Stats().Rules; got != 2 {
		t.Errorf("stage has %d rules, want 2", got)
	}
	for _, bad := range []string{"../x", ".hidden", "", strings.Repeat("a", 101)} {
		var ie *InputError
		if _, err := svc.PutFile(bad, []byte(testRules)); !errors.As(err, &ie) {
			t.Errorf("PutFile(%q) = %v, want an input error", bad, err)
		}
	}
	// More than the loader's line limit: the file's rule is counted as
	// malformed, the set still compiles.
	rep2, err := svc.PutFile("long.rules", []byte("alert tcp any any -> any any (msg:\"long\"; content:\""+strings.Repeat("a", 70000)+"\"; sid:5; rev:1;)\n"))
	if err != nil {
		t.Fatal(err)
	}
	if rep2.Loaded != 0 || len(rep2.Errors) == 0 {
		t.Errorf("long rule: %+v", rep2)
	}
	// A bad classification.config is refused and not kept.
	if _, err := svc.PutFile(ClassificationFile, []byte("config classification: broken\n")); err == nil {
		t.Error("a malformed classification.config was kept")
	}
	if _, err := os.Stat(filepath.Join(dir, "rules", ClassificationFile)); err == nil {
		t.Error("the refused classification.config is on disk")
	}
	rs := svc.Rules(1000001, false, 10)
	if len(rs) != 1 || rs[0].Rev != 2 || rs[0].Msg != "T uri" || rs[0].Action != "alert" {
		t.Errorf("Rules(1000001) = %+v", rs)
	}
	if err := svc.RemoveFile("long.rules"); err != nil {
		t.Fatal(err)
	}
	if err := svc.RemoveFile("long.rules"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second remove: %v", err)
	}
	// A restart finds the files and compiles them again.
	svc.Close()
	svc2, err := New(context.Background(), stage, st, filepath.Join(dir, "rules"), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer svc2.Close()
	s2 := svc2.Status()
	if len(s2.Files) != 1 || s2.Files[0].Name != "test.rules" || s2.Loaded != 2 {
		t.Errorf("after restart: %+v", s2)
	}
}

// Every ET Open file loads with per-file counts that add up to the total.
func TestETOpenFiles(t *testing.T) {
	et, err := shareddata.Dir("et-open")
	if err != nil {
		t.Skipf("shared data: %v", err)
	}
	svc, _, _ := newSvc(t, t.TempDir())
	files, _ := filepath.Glob(filepath.Join(et, "emerging-web*.rules"))
	if len(files) == 0 {
		t.Skip("no emerging-web rules")
	}
	cls, err := os.ReadFile(filepath.Join(et, "classification.config"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutFile(ClassificationFile, cls); err != nil {
		t.Fatal(err)
	}
	sum := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.PutFile(filepath.Base(f), b); err != nil {
			t.Fatal(err)
		}
	}
	st := svc.Status()
	for _, f := range st.Files {
		sum += f.Loaded
	}
	if sum != st.Loaded || st.Loaded < 1000 {
		t.Errorf("per-file loaded %d, total %d", sum, st.Loaded)
	}
}

// The policy is validated, stored and installed; it survives a restart.
func TestSetMode(t *testing.T) {
	dir := t.TempDir()
	svc, st, stage := newSvc(t, dir)
	ctx := context.Background()
	if _, err := svc.SetMode(ctx, ModeChange{Network: "n1", Mode: ipsstage.ModeBlock}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.SetMode(ctx, ModeChange{Group: "web", Mode: ipsstage.ModeAlert}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []ModeChange{
		{Network: "n1", Mode: "loud"},
		{Network: "n1", Mode: ipsstage.ModeAlert, Overload: "maybe"},
		{Group: "web", Mode: ipsstage.ModeAlert, Overload: ipsstage.FailOpen},
		{Mode: ipsstage.ModeAlert},
		{Network: "n1", Group: "web", Mode: ipsstage.ModeAlert},
	} {
		var ie *InputError
		if _, err := svc.SetMode(ctx, bad); !errors.As(err, &ie) {
			t.Errorf("SetMode(%+v) = %v, want an input error", bad, err)
		}
	}
	p := svc.Policy()
	if p.Networks["n1"].Mode != ipsstage.ModeBlock || p.Networks["n1"].Overload != ipsstage.FailClosed || p.Groups["web"] != ipsstage.ModeAlert {
		t.Errorf("policy %+v", p)
	}
	svc.Close()
	svc2, err := New(ctx, stage, st, filepath.Join(dir, "rules"), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer svc2.Close()
	if p2 := svc2.Policy(); p2.Networks["n1"].Mode != ipsstage.ModeBlock || p2.Groups["web"] != ipsstage.ModeAlert {
		t.Errorf("after restart: %+v", p2)
	}
	if _, err := svc2.SetMode(ctx, ModeChange{Network: "n1", Mode: ipsstage.ModeOff}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc2.SetMode(ctx, ModeChange{Group: "web"}); err != nil {
		t.Fatal(err)
	}
	if p3 := svc2.Policy(); len(p3.Networks) != 0 || len(p3.Groups) != 0 {
		t.Errorf("after removing: %+v", p3)
	}
}

// Alerts become EVE lines, and one notice per rule, VM pair and action
// per minute that counts the alerts it stands for.
func TestAlertsNotices(t *testing.T) {
	set, _ := rules.Load(strings.NewReader(testRules), &rules.Options{Disabled: engine.Disabled})
	r := set.Rules[0]
	var eve bytes.Buffer
	a := NewAlerts(&eve, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var notes []Notice
	a.SetNotify(func(n Notice) { notes = append(notes, n) })
	ev := &ipsstage.Event{Alert: engine.Alert{Rule: r, Time: time.Unix(1700000000, 0), FlowID: 7,
		Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), SrcPort: 40000, DstPort: 80, Proto: 6},
		InIface: "b/nic0", Bulwark: ipsstage.Attribution{Network: "n1", SrcVM: "a", DestVM: "b", Mode: ipsstage.ModeAlert}}
	for i := 0; i < 5; i++ {
		a.Sink(ev)
	}
	lines := strings.Split(strings.TrimSpace(eve.String()), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d EVE lines, want 5", len(lines))
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec["event_type"] != "alert" || rec["in_iface"] != "b/nic0" {
		t.Errorf("EVE %s", lines[0])
	}
	if len(notes) != 1 || notes[0].VM != "a" || notes[0].Kind != "ips_alert" || !strings.Contains(notes[0].Summary, "sid 1000001") {
		t.Fatalf("notices %+v", notes)
	}
	// A minute later the next alert is raised with the count it covers.
	var s eveSummary
	json.Unmarshal([]byte(lines[0]), &s)
	a.notice(&s, time.Now().Add(2*NoticeEvery))
	if len(notes) != 2 || notes[1].Evidence["alerts"] != 5 {
		t.Errorf("second notice %+v", notes[len(notes)-1])
	}
}

// An upload with compilation deferred is checked alone and kept; the set
// is compiled with the next upload.
func TestDeferredCompile(t *testing.T) {
	svc, _, stage := newSvc(t, t.TempDir())
	rep, err := svc.PutFile("a.rules", []byte(testRules), true)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Loaded != 2 || stage.Stats().Rules != 0 {
		t.Errorf("deferred: report %+v, stage has %d rules", rep, stage.Stats().Rules)
	}
	if p := svc.Status().Pending; len(p) != 1 || p[0] != "a.rules" {
		t.Errorf("pending %v", p)
	}
	if _, err := svc.PutFile("b.rules", []byte(`alert udp any any -> any 53 (msg:"b"; content:"q"; sid:2000001; rev:1;)`+"\n")); err != nil {
		t.Fatal(err)
	}
	if st := svc.Status(); st.Loaded != 3 || len(st.Pending) != 0 || stage.Stats().Rules != 3 {
		t.Errorf("after compile: loaded %d, pending %v, stage %d", st.Loaded, st.Pending, stage.Stats().Rules)
	}
}
