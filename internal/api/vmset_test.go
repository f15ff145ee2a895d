package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwark-project/bulwark/internal/access"
	"github.com/bulwark-project/bulwark/internal/audit"
	"github.com/bulwark-project/bulwark/internal/hv"
	"github.com/bulwark-project/bulwark/internal/manager"
	"github.com/bulwark-project/bulwark/internal/netsw"
	"github.com/bulwark-project/bulwark/internal/store"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// setVMM is a hypervisor backend whose VMs run until stopped, so that the
// API can be tested against running VMs without QEMU. gate, if set, holds
// every Launch until it is closed; entered receives one value per Launch.
type setVMM struct {
	mu       sync.Mutex
	launched []vm.Spec
	gate     chan struct{}
	entered  chan struct{}
}

func (b *setVMM) Name() string { return "fake" }

func (b *setVMM) Launch(ctx context.Context, cfg hv.LaunchConfig) (hv.Instance, error) {
	b.mu.Lock()
	gate, entered := b.gate, b.entered
	b.launched = append(b.launched, cfg.Spec)
	b.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
	}
	if gate != nil {
		<-gate
	}
	return &setInstance{done: make(chan struct{})}, nil
}

func (b *setVMM) Attach(context.Context, hv.Handle, hv.AttachConfig) (hv.Instance, error) {
	return nil, hv.ErrGone
}

func (b *setVMM) lastLaunch() vm.Spec {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.launched[len(b.launched)-1]
}

type setInstance struct {
	once   sync.Once
	done   chan struct{}
	paused atomic.Bool
}

func (i *setInstance) Status(context.Context) (string, error) {
	if i.paused.Load() {
		return "paused", nil
	}
	return "running", nil
}
func (i *setInstance) end()                           { i.once.Do(func() { close(i.done) }) }
func (i *setInstance) Handle() hv.Handle              { return hv.Handle{} }
func (i *setInstance) Pause(context.Context) error    { i.paused.Store(true); return nil }
func (i *setInstance) Resume(context.Context) error   { i.paused.Store(false); return nil }
func (i *setInstance) Shutdown(context.Context) error { i.end(); return nil }
func (i *setInstance) Kill(context.Context) error     { i.end(); return nil }
func (i *setInstance) DialConsole(context.Context) (net.Conn, error) {
	return nil, errors.New("no console")
}
func (i *setInstance) Done() <-chan struct{} { return i.done }
func (i *setInstance) Exit() hv.Exit         { return hv.Exit{Requested: true, Status: "exit status 0"} }
func (i *setInstance) Detach()               {}

// newSetTestServer is a full API server (switch, access control, audit
// log, image directory) over the fake backend. The VM "a" exists: 64 MiB,
// kernel in the image directory, one NIC on network lab in group web;
// groups web and db exist.
func newSetTestServer(t *testing.T) (*testServer, *setVMM, *audit.Log) {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(context.Background(), filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	accel := func(string) (hv.Accel, error) { return hv.Accel{Name: "tcg", Reason: "test"}, nil }
	b := &setVMM{}
	mgr, err := manager.New(st, b, accel, manager.Config{RunRoot: filepath.Join(dir, "run"), LogRoot: filepath.Join(dir, "log"), StopTimeout: 5 * time.Second}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mgr.Close)
	srv := New(mgr, Info{Version: "test", GoVersion: "go", Backend: "fake", Hostname: "h", StateDir: dir}, prometheus.NewRegistry(), log)
	// Not t.TempDir for the switch: a Unix socket path must stay short.
	swDir, err := os.MkdirTemp("", "vmset")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(swDir) })
	sw := netsw.New(log, nil)
	t.Cleanup(sw.Close)
	svc, err := netsw.NewService(context.Background(), sw, st, swDir, log)
	if err != nil {
		t.Fatal(err)
	}
	mgr.SetNetwork(svc)
	srv.SetNetwork(svc, filepath.Join(dir, "fw.jsonl"))
	acc, err := access.New(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	srv.SetAccess(acc)
	key, err := audit.LoadOrCreateKey(filepath.Join(dir, "audit"))
	if err != nil {
		t.Fatal(err)
	}
	alog, err := audit.Open(context.Background(), filepath.Join(dir, "audit"), key, 100)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alog.Close() })
	srv.SetAudit(alog)
	images := filepath.Join(dir, "images")
	os.MkdirAll(images, 0o700)
	srv.SetImageDirs([]string{images})
	kernel := filepath.Join(images, "vmlinuz")
	if err := os.WriteFile(kernel, []byte("not really a kernel"), 0o600); err != nil {
		t.Fatal(err)
	}
	ts := &testServer{t: t, srv: srv, kernel: kernel, dir: dir, mgr: mgr, st: st}
	for _, c := range []struct{ path, body string }{
		{"/api/v1/networks", `{"name":"lab","subnet":"10.30.0.0/24"}`},
		{"/api/v1/networks", `{"name":"lab2","subnet":"10.31.0.0/24"}`},
		{"/api/v1/security-groups", `{"name":"web"}`},
		{"/api/v1/security-groups", `{"name":"db"}`},
		{"/api/v1/vms", `{"name":"a","memory_mib":64,"kernel":"` + kernel + `","nics":[{"network":"lab","groups":["web"],"mac":"52:54:00:30:00:02"}]}`},
	} {
		if rec := ts.do("POST", c.path, body(c.body)); rec.Code != 201 {
			t.Fatalf("POST %s %s: %d %s", c.path, c.body, rec.Code, rec.Body)
		}
	}
	return ts, b, alog
}

// patch sends PATCH /api/v1/vms/NAME as root and decodes a 200 answer.
func (ts *testServer) patch(name, b string) (*httptest.ResponseRecorder, VMUpdate) {
	ts.t.Helper()
	rec := ts.do("PATCH", "/api/v1/vms/"+name, body(b))
	var out VMUpdate
	if rec.Code == 200 {
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			ts.t.Fatalf("answer is not a VMUpdate: %v\n%s", err, rec.Body)
		}
	}
	return rec, out
}

func (ts *testServer) getSpec(name string) vm.Spec {
	ts.t.Helper()
	v, err := ts.mgr.Get(context.Background(), name)
	if err != nil {
		ts.t.Fatal(err)
	}
	return v.Spec
}

// Every refused change names the field and changes nothing: bad values
// (create's rules), malformed and hostile bodies, names that cannot change.
func TestVMSetValidation(t *testing.T) {
	ts, _, _ := newSetTestServer(t)
	before := ts.getSpec("a")
	for _, tc := range []struct {
		desc, body string
		code       int
		field      string
	}{
		{"vcpus zero", `{"vcpus":0}`, 400, "vcpus"},
		{"vcpus too many", `{"vcpus":65}`, 400, "vcpus"},
		{"memory too small", `{"memory_mib":1}`, 400, "memory_mib"},
		{"memory as string", `{"memory_mib":"128"}`, 400, "memory_mib"},
		{"memory fractional", `{"memory_mib":64.5}`, 400, "memory_mib"},
		{"kernel missing", `{"kernel":"` + filepath.Join(ts.dir, "images", "nope") + `"}`, 400, "kernel"},
		{"kernel relative", `{"kernel":"vmlinuz"}`, 400, "kernel"},
		{"kernel cleared", `{"kernel":""}`, 400, "kernel"},
		{"cmdline control character", `{"cmdline":"a\u0007b"}`, 400, "cmdline"},
		{"cmdline too long", `{"cmdline":"` + strings.Repeat("x", 2049) + `"}`, 400, "cmdline"},
		{"accel", `{"accel":"warp"}`, 400, "accel"},
		{"monitor interval", `{"monitor_interval":"1ms"}`, 400, "monitor_interval"},
		{"too many disks", `{"disks":[` + strings.Repeat(`{"path":"/x"},`, 8) + `{"path":"/x"}]}`, 400, "disks"},
		{"disk missing", `{"disks":[{"path":"/nonexistent/disk"}]}`, 400, "disks[0].path"},
		{"nic on a host socket", `{"nics":[{"socket":"/run/systemd/journal/socket"}]}`, 400, "nics[0].socket"},
		{"nic on no network with groups", `{"nics":[{"groups":["web"]}]}`, 400, "nics[0].network"},
		{"nic on a missing network", `{"nics":[{"network":"nope"}]}`, 400, "nics[0].network"},
		{"nic group unknown", `{"nic_groups":[{"nic":0,"groups":["nope"]}]}`, 400, "nics[0].groups[0]"},
		{"nic group twice", `{"nic_groups":[{"nic":0,"groups":["web","web"]}]}`, 400, "nics[0].groups[1]"},
		{"nic group bad name", `{"nic_groups":[{"nic":0,"groups":["../x"]}]}`, 400, "nics[0].groups[0]"},
		{"nic index out of range", `{"nic_groups":[{"nic":1,"groups":["db"]}]}`, 400, "nic_groups[0].nic"},
		{"nic index twice", `{"nic_groups":[{"nic":0,"groups":["db"]},{"nic":0,"groups":["web"]}]}`, 400, "nic_groups[1].nic"},
		{"nics and nic_groups", `{"nics":[],"nic_groups":[{"nic":0,"groups":["db"]}]}`, 400, "nic_groups"},
		{"nic IP outside the subnet", `{"nics":[{"network":"lab","mac":"52:54:00:30:00:02","ip":"10.99.0.5","groups":["web"]}]}`, 400, "nics[0].ip"},
		{"duplicate MAC", `{"nics":[{"network":"lab","mac":"52:54:00:30:00:02"},{"mac":"52:54:00:30:00:02"}]}`, 400, "nics[1].mac"},
		{"rename", `{"name":"b"}`, 400, "name"},
		{"console here", `{"console":{"clipboard":"allow"}}`, 400, "console"},
		{"unknown field", `{"colour":"red"}`, 400, "colour"},
		{"duplicate key", `{"memory_mib":128,"memory_mib":32}`, 400, "memory_mib"},
		{"duplicate key by case", `{"memory_mib":128,"MEMORY_MIB":32}`, 400, "MEMORY_MIB"},
		{"duplicate key in a NIC", `{"nic_groups":[{"nic":0,"nic":0,"groups":[]}]}`, 400, "nic_groups.nic"},
		{"not an object", `[1]`, 400, ""},
		{"malformed", `{"memory_mib":`, 400, ""},
		{"trailing data", `{"memory_mib":128} {}`, 400, ""},
		{"empty body", ``, 400, ""},
		{"deep nesting", `{"disks":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, 400, "disks"},
		{"body too large", `{"cmdline":"` + strings.Repeat("x", MaxBodyBytes) + `"}`, 413, ""},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			rec := ts.do("PATCH", "/api/v1/vms/a", body(tc.body))
			expectError(t, rec, tc.code, tc.field)
		})
	}
	if after := ts.getSpec("a"); len(vm.Diff(before, after)) != 0 {
		t.Errorf("refused changes changed the VM: %s", vm.FormatChanges(vm.Diff(before, after)))
	}
	expectError(t, ts.do("PATCH", "/api/v1/vms/nope", body(`{"vcpus":2}`)), 404, "")
}

// A change answers and audits its diff; a change to nothing writes nothing
// and says so.
func TestVMSetDiffAndAudit(t *testing.T) {
	ts, _, alog := newSetTestServer(t)
	rec, out := ts.patch("a", `{"vcpus":2,"memory_mib":128,"cmdline":"quiet","nic_groups":[{"nic":0,"groups":["web","db"]}]}`)
	if rec.Code != 200 {
		t.Fatalf("patch: %d %s", rec.Code, rec.Body)
	}
	want := []vm.Change{{Field: "vcpus", Old: "1", New: "2"}, {Field: "memory_mib", Old: "64", New: "128"},
		{Field: "cmdline", Old: `""`, New: `"quiet"`}, {Field: "nics[0].groups", Old: `["web"]`, New: `["web","db"]`}}
	if !slices.Equal(out.Changes, want) {
		t.Errorf("changes %v, want %v", out.Changes, want)
	}
	if s := out.VM.Spec; s.VCPUs != 2 || s.MemoryMiB != 128 || s.Cmdline != "quiet" || len(vm.Diff(s, ts.getSpec("a"))) != 0 {
		t.Errorf("answer's spec %+v", s)
	}
	if s := ts.getSpec("a"); s.VCPUs != 2 || s.MemoryMiB != 128 || !slices.Equal(s.NICs[0].Groups, []string{"web", "db"}) {
		t.Errorf("stored spec %+v", s)
	}
	recs, err := alog.List(context.Background(), audit.Filter{Object: "/vms/a", Desc: true, Limit: 1})
	if err != nil || len(recs) != 1 {
		t.Fatalf("audit: %v %v", recs, err)
	}
	r := recs[0]
	wantDetail := `changed VM a: vcpus: 1 → 2; memory_mib: 64 → 128; cmdline: "" → "quiet"; nics[0].groups: ["web"] → ["web","db"]`
	if r.Action != "updateVM" || r.Result != audit.ResultOK || !strings.HasPrefix(r.Detail, wantDetail) {
		t.Errorf("audit record %+v\nwant detail %q", r, wantDetail)
	}

	// The same values again: no change, nothing written.
	updated := mustVM(t, ts, "a").Updated
	rec, out = ts.patch("a", `{"vcpus":2,"memory_mib":128}`)
	if rec.Code != 200 || len(out.Changes) != 0 || !strings.Contains(rec.Body.String(), `"changes": []`) {
		t.Errorf("no-op: %d %s", rec.Code, rec.Body)
	}
	if !mustVM(t, ts, "a").Updated.Equal(updated) {
		t.Error("a no-op change wrote the VM")
	}
	recs, _ = alog.List(context.Background(), audit.Filter{Object: "/vms/a", Desc: true, Limit: 1})
	if len(recs) != 1 || !strings.HasPrefix(recs[0].Detail, "changed VM a: no change") {
		t.Errorf("no-op audit record %+v", recs)
	}

	// Lists replace the whole list; a new NIC gets a MAC and an address.
	rec, out = ts.patch("a", `{"nics":[{"network":"lab","mac":"52:54:00:30:00:02","groups":["web"]},{"network":"lab"}],"initrd":""}`)
	if rec.Code != 200 {
		t.Fatalf("nics: %d %s", rec.Code, rec.Body)
	}
	s := ts.getSpec("a")
	if len(s.NICs) != 2 || s.NICs[1].MAC == "" || s.NICs[1].IP == "" || s.NICs[0].IP != "10.30.0.1" {
		t.Errorf("NICs after the change: %+v", s.NICs)
	}
	if len(out.Changes) != 2 || out.Changes[0].Field != "nics[0].groups" || out.Changes[1].Field != "nics[1]" ||
		!strings.Contains(out.Changes[1].New, s.NICs[1].IP) {
		t.Errorf("changes %v: want the groups and the new NIC with its assigned address", out.Changes)
	}
}

func mustVM(t *testing.T, ts *testServer, name string) *vm.VM {
	t.Helper()
	v, err := ts.mgr.Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// A running VM takes only NIC security groups, which the switch applies at
// once; anything else is a 409 naming the state. Stopped, it takes all.
func TestVMSetWhileRunning(t *testing.T) {
	ts, b, _ := newSetTestServer(t)
	if rec := ts.do("POST", "/api/v1/vms/a/start", nil); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"running"`) {
		t.Fatalf("start: %d %s", rec.Code, rec.Body)
	}
	portGroups := func() []string {
		var ps []netsw.PortStatus
		json.Unmarshal(ts.do("GET", "/api/v1/ports", nil).Body.Bytes(), &ps)
		for _, p := range ps {
			if p.Name == "a/nic0" {
				return p.Groups
			}
		}
		t.Fatal("no port a/nic0")
		return nil
	}
	if g := portGroups(); !slices.Equal(g, []string{"web"}) {
		t.Fatalf("port groups %v before the change", g)
	}
	for _, bad := range []string{
		`{"memory_mib":128}`, `{"vcpus":2}`, `{"cmdline":"quiet"}`, `{"disks":[{"path":"` + ts.kernel + `","read_only":true}]}`, `{"nics":[]}`,
		`{"nics":[{"network":"lab","mac":"52:54:00:30:00:02","ip":"10.30.0.9","groups":["web"]}]}`,
		`{"memory_mib":128,"nic_groups":[{"nic":0,"groups":["db"]}]}`,
	} {
		rec := ts.do("PATCH", "/api/v1/vms/a", body(bad))
		e := expectError(t, rec, http.StatusConflict, "")
		if !strings.Contains(e.Error, "running") {
			t.Errorf("%s: conflict %q does not name the state", bad, e.Error)
		}
	}
	if g := portGroups(); !slices.Equal(g, []string{"web"}) {
		t.Errorf("refused changes moved the port to %v", g)
	}

	rec, out := ts.patch("a", `{"nic_groups":[{"nic":0,"groups":["db"]}]}`)
	if rec.Code != 200 || len(out.Changes) != 1 || out.Changes[0].Field != "nics[0].groups" {
		t.Fatalf("live groups: %d %s", rec.Code, rec.Body)
	}
	if g := portGroups(); !slices.Equal(g, []string{"db"}) {
		t.Errorf("port groups %v after the live change, want [db]", g)
	}
	// The whole NIC list with only the groups different is a live change too.
	if rec, _ := ts.patch("a", `{"nics":[{"network":"lab","mac":"52:54:00:30:00:02","ip":"10.30.0.1","groups":["web","db"]}]}`); rec.Code != 200 {
		t.Fatalf("live groups through nics: %d %s", rec.Code, rec.Body)
	}
	if g := portGroups(); !slices.Equal(g, []string{"web", "db"}) {
		t.Errorf("port groups %v, want [web db]", g)
	}
	// An unknown group: 400, neither the port nor the definition change.
	expectError(t, ts.do("PATCH", "/api/v1/vms/a", body(`{"nic_groups":[{"nic":0,"groups":["nope"]}]}`)), 400, "nics[0].groups[0]")
	if g := portGroups(); !slices.Equal(g, []string{"web", "db"}) {
		t.Errorf("port groups %v after a refused change", g)
	}
	if g := ts.getSpec("a").NICs[0].Groups; !slices.Equal(g, []string{"web", "db"}) {
		t.Errorf("stored groups %v after a refused change", g)
	}
	// The group in use by the running VM cannot be deleted.
	expectError(t, ts.do("DELETE", "/api/v1/security-groups/db", nil), 409, "")

	// Paused is still a running hypervisor.
	ts.do("POST", "/api/v1/vms/a/pause", nil)
	e := expectError(t, ts.do("PATCH", "/api/v1/vms/a", body(`{"vcpus":2}`)), http.StatusConflict, "")
	if !strings.Contains(e.Error, "paused") {
		t.Errorf("conflict %q does not name the state", e.Error)
	}
	if rec := ts.do("POST", "/api/v1/vms/a/stop", nil); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"stopped"`) {
		t.Fatalf("stop: %d %s", rec.Code, rec.Body)
	}
	if rec, out := ts.patch("a", `{"vcpus":2,"memory_mib":96}`); rec.Code != 200 || len(out.Changes) != 2 {
		t.Fatalf("stopped: %d %s", rec.Code, rec.Body)
	}
	ts.do("POST", "/api/v1/vms/a/start", nil)
	if s := b.lastLaunch(); s.VCPUs != 2 || s.MemoryMiB != 96 || !slices.Equal(s.NICs[0].Groups, []string{"web", "db"}) {
		t.Errorf("the next start launched %+v", s)
	}
	ts.do("POST", "/api/v1/vms/a/stop", nil)
}

// A set waits for a start in progress (the VM's operation lock) and then
// sees the VM running; whatever interleaving, what a start launches is
// what is stored while the VM runs.
func TestVMSetVersusStart(t *testing.T) {
	ts, b, _ := newSetTestServer(t)
	b.mu.Lock()
	b.gate, b.entered = make(chan struct{}), make(chan struct{}, 1)
	b.mu.Unlock()
	started := make(chan *httptest.ResponseRecorder)
	go func() { started <- ts.do("POST", "/api/v1/vms/a/start", nil) }()
	<-b.entered
	patched := make(chan *httptest.ResponseRecorder)
	go func() { patched <- ts.do("PATCH", "/api/v1/vms/a", body(`{"memory_mib":128}`)) }()
	select {
	case rec := <-patched:
		t.Fatalf("the set did not wait for the start: %d %s", rec.Code, rec.Body)
	case <-time.After(200 * time.Millisecond):
	}
	close(b.gate)
	if rec := <-started; rec.Code != 200 {
		t.Fatalf("start: %d %s", rec.Code, rec.Body)
	}
	expectError(t, <-patched, http.StatusConflict, "")
	if m := ts.getSpec("a").MemoryMiB; m != 64 {
		t.Errorf("memory %d MiB after a set refused during the start", m)
	}
	ts.do("POST", "/api/v1/vms/a/stop", nil)

	b.mu.Lock()
	b.gate, b.entered = nil, nil
	b.mu.Unlock()
	// Storm: starts, stops and sets of memory at once.
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(3)
		go func() { defer wg.Done(); ts.do("POST", "/api/v1/vms/a/start", nil) }()
		go func(i int) {
			defer wg.Done()
			ts.do("PATCH", "/api/v1/vms/a", body(`{"memory_mib":`+[]string{"64", "96", "128", "160"}[i%4]+`}`))
		}(i)
		go func() { defer wg.Done(); ts.do("POST", "/api/v1/vms/a/stop?force=true", nil) }()
		wg.Wait()
		v := mustVM(t, ts, "a")
		if v.State == vm.Running && b.lastLaunch().MemoryMiB != v.Spec.MemoryMiB {
			t.Fatalf("round %d: running with %d MiB launched but %d MiB stored", i, b.lastLaunch().MemoryMiB, v.Spec.MemoryMiB)
		}
	}
	ts.do("POST", "/api/v1/vms/a/stop?force=true", nil)
}

// Privileges: VM.Config on the VM for any change; VM.HostPaths for what a
// change newly names outside the image directories (an unchanged host path
// put there by an administrator does not stop other changes); Network.Attach
// on the networks and on every group a NIC joins or leaves. Refusals are
// audited.
func TestVMSetPrivileges(t *testing.T) {
	ts, _, alog := newSetTestServer(t)
	outside := filepath.Join(ts.dir, "secret.img")
	os.WriteFile(outside, make([]byte, 4096), 0o600)
	shared := filepath.Join(ts.dir, "images", "shared.img")
	os.WriteFile(shared, make([]byte, 4096), 0o600)
	// The administrator gives the VM a host disk.
	if rec, _ := ts.patch("a", `{"disks":[{"path":"`+outside+`"},{"path":"`+shared+`","read_only":true}]}`); rec.Code != 200 {
		t.Fatalf("root adds a host disk: %d %s", rec.Code, rec.Body)
	}
	for _, c := range []struct{ path, body string }{
		{"/api/v1/users", `{"name":"carol"}`},
		{"/api/v1/users", `{"name":"dave"}`},
		{"/api/v1/roles", `{"name":"editor"}`},
		{"/api/v1/roles/editor/privileges", `{"privilege":"VM.Config"}`},
		{"/api/v1/roles/editor/privileges", `{"privilege":"VM.Audit"}`},
		{"/api/v1/roles", `{"name":"attach"}`},
		{"/api/v1/roles/attach/privileges", `{"privilege":"Network.Attach"}`},
		{"/api/v1/permissions", `{"user":"carol","role":"editor","path":"/vms","propagate":true}`},
		{"/api/v1/permissions", `{"user":"dave","role":"ReadOnly","path":"/","propagate":true}`},
	} {
		if rec := ts.do("POST", c.path, body(c.body)); rec.Code/100 != 2 {
			t.Fatalf("POST %s %s: %d %s", c.path, c.body, rec.Code, rec.Body)
		}
	}
	carol, dave := ts.token("carol"), ts.token("dave")
	try := func(tok, b string) *httptest.ResponseRecorder { return ts.as(tok, "PATCH", "/api/v1/vms/a", body(b)) }
	refused := func(desc string, rec *httptest.ResponseRecorder, want ...string) {
		t.Helper()
		if rec.Code != 403 {
			t.Errorf("%s: %d %s, want 403", desc, rec.Code, rec.Body)
			return
		}
		for _, w := range want {
			if !strings.Contains(rec.Body.String(), w) {
				t.Errorf("%s: %s does not name %q", desc, rec.Body, w)
			}
		}
	}
	refused("without VM.Config", try(dave, `{"memory_mib":128}`), "VM.Config")
	if rec := try(carol, `{"memory_mib":128}`); rec.Code != 200 {
		t.Errorf("memory change with an unchanged host disk: %d %s", rec.Code, rec.Body)
	}
	if rec := try(carol, `{"disks":[{"path":"`+shared+`","read_only":true},{"path":"`+outside+`"}]}`); rec.Code != 200 {
		t.Errorf("reordering the disks names nothing new: %d %s", rec.Code, rec.Body)
	}
	refused("kernel outside", try(carol, `{"kernel":"`+outside+`"}`), "VM.HostPaths", "kernel")
	refused("kernel outside, missing", try(carol, `{"kernel":"/root/no-such-file"}`), "VM.HostPaths") // no existence oracle
	refused("initrd outside", try(carol, `{"initrd":"/etc/shadow"}`), "VM.HostPaths", "initrd")
	refused("new host disk", try(carol, `{"disks":[{"path":"`+shared+`","read_only":true},{"path":"`+outside+`"},{"path":"/etc/shadow","read_only":true}]}`),
		"VM.HostPaths", "disks[2]")
	refused("image disk made writable", try(carol, `{"disks":[{"path":"`+shared+`"},{"path":"`+outside+`"}]}`), "read_only")

	refused("joining a group", try(carol, `{"nic_groups":[{"nic":0,"groups":["web","db"]}]}`), "Network.Attach", "/security-groups/db")
	refused("leaving a group", try(carol, `{"nic_groups":[{"nic":0,"groups":[]}]}`), "Network.Attach", "/security-groups/web")
	refused("new NIC on a network", try(carol, `{"nics":[{"network":"lab","mac":"52:54:00:30:00:02","groups":["web"]},{"network":"lab2"}]}`),
		"Network.Attach", "/networks/lab2")
	if rec := ts.do("POST", "/api/v1/permissions", body(`{"user":"carol","role":"attach","path":"/security-groups/db","propagate":false}`)); rec.Code != 201 {
		t.Fatalf("grant attach: %d %s", rec.Code, rec.Body)
	}
	if rec := try(carol, `{"nic_groups":[{"nic":0,"groups":["web","db"]}]}`); rec.Code != 200 {
		t.Errorf("joining db with Network.Attach on it: %d %s", rec.Code, rec.Body)
	}
	refused("reordering groups", try(carol, `{"nic_groups":[{"nic":0,"groups":["db","web"]}]}`), "Network.Attach", "/security-groups/web")
	if rec := try(carol, `{"nic_groups":[{"nic":0,"groups":["web"]}]}`); rec.Code != 200 {
		t.Errorf("leaving db with Network.Attach on it: %d %s", rec.Code, rec.Body)
	}

	recs, err := alog.List(context.Background(), audit.Filter{User: "carol", Object: "/vms/a", Desc: true, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var denied int
	for _, r := range recs {
		if r.Action == "updateVM" && r.Result == audit.ResultDenied {
			denied++
		}
	}
	if denied < 8 {
		t.Errorf("%d denied updateVM records for carol, want at least 8", denied)
	}
}

// The privilege helpers on their own.
func TestVMSetNewlyNamed(t *testing.T) {
	old := vm.Spec{Kernel: "/k", Initrd: "/i", Disks: []vm.Disk{{Path: "/a"}, {Path: "/b", ReadOnly: true}},
		NICs: []vm.NIC{{MAC: "m1", Network: "n", Groups: []string{"x", "y"}}}}
	nw := old
	nw.Kernel = "/k2"
	nw.Disks = []vm.Disk{{Path: "/b", ReadOnly: true}, {Path: "/b"}, {Path: "/c"}}
	got := newlyNamed(old, nw)
	if got.Kernel != "/k2" || got.Initrd != "" || !slices.Equal(got.Disks, []vm.Disk{{}, {Path: "/b"}, {Path: "/c"}}) {
		t.Errorf("newlyNamed = %+v", got)
	}
	for _, tc := range []struct {
		nics []vm.NIC
		want []vm.NIC
	}{
		{[]vm.NIC{{MAC: "m1", Network: "n", Groups: []string{"x", "y"}}}, []vm.NIC{{}}},
		{[]vm.NIC{{MAC: "m1", Network: "n", Groups: []string{"x", "z"}}}, []vm.NIC{{Groups: []string{"z", "y"}}}},
		{[]vm.NIC{{MAC: "m1", Network: "n", Groups: []string{"y", "x"}}}, []vm.NIC{{Groups: []string{"y", "x"}}}},
		{[]vm.NIC{{MAC: "m1", Network: "n2", Groups: []string{"x"}}}, []vm.NIC{{Network: "n2", Groups: []string{"x"}}}},
		{[]vm.NIC{{MAC: "m2", Network: "n"}, {MAC: "m1", Network: "n", Groups: []string{"x", "y"}}}, []vm.NIC{{Network: "n"}, {}}},
		{nil, []vm.NIC{}},
	} {
		nw := old
		nw.NICs = tc.nics
		got := attachChanges(old, nw).NICs
		if len(got) != len(tc.want) {
			t.Errorf("attachChanges(%+v) = %+v, want %+v", tc.nics, got, tc.want)
			continue
		}
		for i := range got {
			if got[i].Network != tc.want[i].Network || !slices.Equal(got[i].Groups, tc.want[i].Groups) {
				t.Errorf("attachChanges(%+v) = %+v, want %+v", tc.nics, got, tc.want)
			}
		}
	}
}
