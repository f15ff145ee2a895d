package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwark-project/bulwark/internal/api"
	"github.com/bulwark-project/bulwark/internal/audit"
	"github.com/bulwark-project/bulwark/internal/client"
	"github.com/bulwark-project/bulwark/internal/hv"
	"github.com/bulwark-project/bulwark/internal/hv/qemu"
	"github.com/bulwark-project/bulwark/internal/manager"
	"github.com/bulwark-project/bulwark/internal/netsw"
	"github.com/bulwark-project/bulwark/internal/store"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// scripted answers every "check" with the findings the test set for the
// VM: a stand-in for the monitor process, which needs a running guest
// (the real one is exercised by itest TestIntrospectionResponse).
type scripted struct {
	mu       sync.Mutex
	findings map[string][]api.ScanFinding
}

func (s *scripted) Query(ctx context.Context, vmName, op string, out any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rep, ok := out.(*api.ScanReport)
	if op != "check" || !ok {
		return errors.New("not scripted")
	}
	*rep = api.ScanReport{Time: time.Now().UTC(), Findings: append([]api.ScanFinding(nil), s.findings[vmName]...)}
	return nil
}

func (s *scripted) set(vmName string, f ...api.ScanFinding) {
	s.mu.Lock()
	s.findings[vmName] = f
	s.mu.Unlock()
}

type respondEnv struct {
	t      *testing.T
	dir    string
	st     *store.Store
	mgr    *manager.Manager
	sw     *netsw.Switch
	audit  *audit.Log
	resp   *responder
	intro  *scripted
	c      *client.Client
	evPath string
}

// newRespondEnv wires a real store, manager (no VM is started), switch,
// audit log and API server on a Unix socket, with the responder between
// the API and a scripted introspector.
func newRespondEnv(t *testing.T) *respondEnv {
	t.Helper()
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "bwresp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(ctx, filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	accel := func(string) (hv.Accel, error) { return hv.Accel{Name: "tcg", Reason: "test"}, nil }
	mgr, err := manager.New(st, qemu.New("", ""), accel, manager.Config{RunRoot: filepath.Join(dir, "run"), LogRoot: filepath.Join(dir, "log")}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mgr.Close)
	kernel := filepath.Join(dir, "vmlinuz")
	os.WriteFile(kernel, []byte("not a kernel"), 0o600)
	for _, name := range []string{"web", "db"} {
		if _, err := mgr.Create(ctx, vm.Spec{Name: name, VCPUs: 1, MemoryMiB: 64, Kernel: kernel}); err != nil {
			t.Fatal(err)
		}
	}
	al, err := openAudit(ctx, Config{StateDir: filepath.Join(dir, "state"), AuditAnchorFile: "none"}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { al.Close() })
	sw := netsw.New(log, nil)
	t.Cleanup(sw.Close)
	e := &respondEnv{t: t, dir: dir, st: st, mgr: mgr, sw: sw, audit: al, intro: &scripted{findings: map[string][]api.ScanFinding{}},
		evPath: filepath.Join(dir, "events.jsonl")}
	if e.resp, err = newResponder(ctx, filepath.Join(dir, "state"), st, mgr, sw, al, nil, log); err != nil {
		t.Fatal(err)
	}
	evf, err := os.OpenFile(e.evPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { evf.Close() })
	srv := api.New(mgr, api.Info{Version: "test"}, prometheus.NewRegistry(), log)
	srv.SetAudit(al)
	srv.SetIntrospection(e.resp.gateway(e.intro, srv.RecordEvent), api.NewEvents(evf, e.evPath))
	sock := filepath.Join(dir, "b.sock")
	ln, err := ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	hs := newTestServer(srv)
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	e.c = client.New(sock)
	return e
}

// wait returns once no response is pending.
func (e *respondEnv) wait() {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		e.resp.mu.Lock()
		n := e.resp.pending
		e.resp.mu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatal("responses still pending")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// events returns the recorded events of a kind.
func (e *respondEnv) events(kind string) []api.MonitorEvent {
	e.t.Helper()
	b, _ := os.ReadFile(e.evPath)
	var out []api.MonitorEvent
	for _, line := range strings.Split(string(b), "\n") {
		var ev api.MonitorEvent
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Kind == kind {
			out = append(out, ev)
		}
	}
	return out
}

func (e *respondEnv) check(vmName string) {
	e.t.Helper()
	if err := e.c.Do(context.Background(), "POST", "/api/v1/vms/"+vmName+"/vmi/check", nil, nil); err != nil {
		e.t.Fatal(err)
	}
	e.wait()
}

// auditOf returns the audit records of an action as "user result".
func (e *respondEnv) auditOf(action string) []string {
	e.t.Helper()
	recs, err := e.audit.List(context.Background(), audit.Filter{Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		if r.Action == action {
			out = append(out, r.User+" "+r.Result+" "+r.Object)
		}
	}
	return out
}

// TestResponse: the policy is validated and stored through the API; a
// new finding runs its actions once (isolate cuts the switch ports and is
// stored; a dump of a VM that is not running fails and says so), each
// audited as bulwark-respond, and ends in a response event; the same
// finding again does nothing, its reappearance responds again; a new
// daemon re-applies the quarantine; release lifts it, audited, as an event.
func TestResponse(t *testing.T) {
	e := newRespondEnv(t)
	ctx := context.Background()

	err := e.c.Do(ctx, "PUT", "/api/v1/monitor/response-policy", json.RawMessage(`{"vms":{"web":{"syscall_hook":["isolate","isolate"]}}}`), nil)
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != 400 || ce.Field != "vms.web.syscall_hook[1]" {
		t.Fatalf("bad policy: %v", err)
	}
	policy := `{"global":{"kernel_text_modified":["pause"]},"vms":{"web":{"syscall_hook":["dump","isolate"],"*":["record"]}}}`
	if err := e.c.Do(ctx, "PUT", "/api/v1/monitor/response-policy", json.RawMessage(policy), nil); err != nil {
		t.Fatal(err)
	}
	var got json.RawMessage
	if err := e.c.Do(ctx, "GET", "/api/v1/monitor/response-policy", nil, &got); err != nil {
		t.Fatal(err)
	}
	var a, b any
	json.Unmarshal(got, &a)
	json.Unmarshal([]byte(policy), &b)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("policy read back: %s", got)
	}

	hook := api.ScanFinding{Kind: "syscall_hook", Summary: "sys_call_table[39] points to __x64_sys_getppid instead of __x64_sys_getpid"}
	e.intro.set("web", hook)
	e.check("web")
	rs := e.events("response")
	if len(rs) != 1 {
		t.Fatalf("%d response events, want 1", len(rs))
	}
	ev := rs[0].Evidence
	res, _ := ev["results"].(map[string]any)
	if rs[0].VM != "web" || res["isolate"] != "ok" || !strings.Contains(res["dump"].(string), "failed") ||
		!reflect.DeepEqual(ev["actions"], []any{"isolate", "dump"}) {
		t.Fatalf("response event: %+v", rs[0])
	}
	if fs, _ := ev["findings"].([]any); len(fs) != 1 || fs[0].(map[string]any)["rule"] != "vms.web.syscall_hook" {
		t.Fatalf("response findings: %v", ev["findings"])
	}
	if q := e.sw.Quarantined(); !reflect.DeepEqual(q, []string{"web"}) {
		t.Fatalf("quarantined: %v", q)
	}
	if got := e.auditOf("respondIsolate"); !reflect.DeepEqual(got, []string{"bulwark-respond intent /vms/web", "bulwark-respond ok /vms/web"}) {
		t.Errorf("isolate audit: %v", got)
	}
	if got := e.auditOf("respondDump"); !reflect.DeepEqual(got, []string{"bulwark-respond intent /vms/web", "bulwark-respond failed /vms/web"}) {
		t.Errorf("dump audit: %v", got)
	}
	var ql api.QuarantineList
	if err := e.c.Do(ctx, "GET", "/api/v1/monitor/quarantine", nil, &ql); err != nil || !reflect.DeepEqual(ql.VMs, []string{"web"}) {
		t.Fatalf("quarantine list: %v %v", ql, err)
	}

	// The same finding again: nothing new. Gone and back: a new response.
	e.check("web")
	if n := len(e.events("response")); n != 1 {
		t.Fatalf("a repeated finding responded again (%d responses)", n)
	}
	e.intro.set("web")
	e.check("web")
	e.intro.set("web", hook)
	e.check("web")
	if rs := e.events("response"); len(rs) != 2 || rs[1].Evidence["results"].(map[string]any)["isolate"] != "already quarantined" {
		t.Fatalf("reappearance: %+v", rs)
	}
	// The VM's "*" exempts it from the global rule; db gets the global one
	// (pause fails: db is not running); a kind nobody named records only.
	e.intro.set("web", hook, api.ScanFinding{Kind: "kernel_text_modified", Summary: "x"})
	e.check("web")
	e.intro.set("db", api.ScanFinding{Kind: "kernel_text_modified", Summary: "x"}, api.ScanFinding{Kind: "hidden_task", Summary: "y"})
	e.check("db")
	rs = e.events("response")
	if len(rs) != 3 || rs[2].VM != "db" || !reflect.DeepEqual(rs[2].Evidence["actions"], []any{"pause"}) {
		t.Fatalf("responses: %+v", rs)
	}

	// A restarted daemon keeps the quarantine and the policy.
	sw2 := netsw.New(slog.New(slog.DiscardHandler), nil)
	defer sw2.Close()
	r2, err := newResponder(ctx, e.dir, e.st, e.mgr, sw2, e.audit, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if q := sw2.Quarantined(); !reflect.DeepEqual(q, []string{"web"}) {
		t.Fatalf("after restart, quarantined: %v", q)
	}
	if d := r2.ResponsePolicy(); len(d.VMs["web"]["syscall_hook"]) != 2 {
		t.Fatalf("after restart, policy: %+v", d)
	}
	// ... and what it answered: the standing findings start no response,
	// a new one does.
	var mu sync.Mutex
	var answered []api.MonitorEvent
	r2.record = func(ev api.MonitorEvent) {
		mu.Lock()
		answered = append(answered, ev)
		mu.Unlock()
	}
	pending := func() int {
		r2.mu.Lock()
		defer r2.mu.Unlock()
		return r2.pending
	}
	settled := func() int {
		for deadline := time.Now().Add(10 * time.Second); pending() != 0; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("after restart, responses still pending")
			}
		}
		mu.Lock()
		defer mu.Unlock()
		return len(answered)
	}
	r2.findings("web", &api.ScanReport{Findings: []api.ScanFinding{hook, {Kind: "kernel_text_modified", Summary: "x"}}})
	if n := settled(); n != 0 {
		t.Fatalf("after restart, standing findings were answered again (%d responses)", n)
	}
	r2.findings("web", &api.ScanReport{Findings: []api.ScanFinding{hook, {Kind: "syscall_hook", Summary: "another"}}})
	if n := settled(); n != 1 {
		t.Fatalf("after restart, a new finding: %d responses, want 1", n)
	}

	var rel api.ReleaseResult
	if err := e.c.Do(ctx, "POST", "/api/v1/vms/web/monitor/release", nil, &rel); err != nil || !rel.Quarantined {
		t.Fatalf("release: %+v %v", rel, err)
	}
	if q := e.sw.Quarantined(); q != nil {
		t.Fatalf("after release: %v", q)
	}
	if _, err := e.st.GetObject(ctx, quarantineKind, "web"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("stored quarantine after release: %v", err)
	}
	if err := e.c.Do(ctx, "POST", "/api/v1/vms/web/monitor/release", nil, &rel); err != nil || rel.Quarantined {
		t.Fatalf("second release: %+v %v", rel, err)
	}
	if got := e.auditOf("releaseQuarantine"); len(got) != 4 || got[1] != "root ok /vms/web" {
		t.Errorf("release audit: %v", got)
	}
	if n := len(e.events("quarantine_released")); n != 1 {
		t.Errorf("%d quarantine_released events, want 1", n)
	}
}
