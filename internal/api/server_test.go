package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwark-project/bulwark/internal/hv"
	"github.com/bulwark-project/bulwark/internal/hv/qemu"
	"github.com/bulwark-project/bulwark/internal/manager"
	"github.com/bulwark-project/bulwark/internal/store"
	"github.com/bulwark-project/bulwark/internal/vm"
)

type testServer struct {
	t      *testing.T
	srv    *Server
	kernel string // an existing kernel file
	dir    string
	mgr    *manager.Manager
	st     *store.Store
}

// newTestServer wires the real store and manager; the QEMU backend is never
// launched because no test starts a VM.
func newTestServer(t *testing.T) *testServer {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(context.Background(), filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	accel := func(string) (hv.Accel, error) { return hv.Accel{Name: "tcg", Reason: "test"}, nil }
	mgr, err := manager.New(st, qemu.New("", ""), accel, manager.Config{
		RunRoot: filepath.Join(dir, "run"), LogRoot: filepath.Join(dir, "log"), UIDBase: 0,
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mgr.Close)
	reg := prometheus.NewRegistry()
	reg.MustRegister(mgr)
	srv := New(mgr, Info{Version: "test", GoVersion: "go", Backend: "qemu", Accel: hv.Accel{Name: "tcg"}, Hostname: "h", StateDir: dir}, reg, log)
	kernel := filepath.Join(dir, "vmlinuz")
	if err := os.WriteFile(kernel, []byte("not really a kernel"), 0o600); err != nil {
		t.Fatal(err)
	}
	return &testServer{t: t, srv: srv, kernel: kernel, dir: dir, mgr: mgr, st: st}
}

func (ts *testServer) do(method, path string, body io.Reader) *httptest.ResponseRecorder {
	ts.t.Helper()
	req := httptest.NewRequest(method, path, body)
	// Unit tests speak as the local root on the Unix socket.
	req = req.WithContext(context.WithValue(req.Context(), callerKey{}, Caller{User: "root", UID: 0, Source: "unix"}))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	ts.srv.ServeHTTP(rec, req)
	return rec
}

func (ts *testServer) spec(name string, edit func(m map[string]any)) io.Reader {
	m := map[string]any{"name": name, "memory_mib": 64, "kernel": ts.kernel}
	if edit != nil {
		edit(m)
	}
	b, err := json.Marshal(m)
	if err != nil {
		ts.t.Fatal(err)
	}
	return bytes.NewReader(b)
}

// expectError checks an error response: status, JSON body, field.
func expectError(t *testing.T, rec *httptest.ResponseRecorder, code int, field string) APIError {
	t.Helper()
	if rec.Code != code {
		t.Fatalf("status %d, want %d; body %s", rec.Code, code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var e APIError
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
		t.Fatalf("error body %q: %v", rec.Body, err)
	}
	if e.Error == "" {
		t.Errorf("error body without a message: %s", rec.Body)
	}
	if e.Field != field {
		t.Errorf("field %q, want %q (%s)", e.Field, field, e.Error)
	}
	return e
}

func TestHTTPVMLifecycle(t *testing.T) {
	ts := newTestServer(t)

	rec := ts.do("POST", "/api/v1/vms", ts.spec("web", func(m map[string]any) { m["nics"] = []map[string]any{{}} }))
	if rec.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	var v vm.VM
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	if v.State != vm.Defined || v.Spec.Name != "web" || v.Spec.VCPUs != 1 || v.Spec.Accel != "auto" || len(v.Spec.NICs) != 1 || v.Spec.NICs[0].MAC == "" {
		t.Errorf("created VM %+v: want defined, normalized", v)
	}

	expectError(t, ts.do("POST", "/api/v1/vms", ts.spec("web", nil)), http.StatusConflict, "")

	rec = ts.do("GET", "/api/v1/vms/web", nil)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"state": "defined"`) {
		t.Errorf("get: %d %s", rec.Code, rec.Body)
	}
	rec = ts.do("GET", "/api/v1/vms", nil)
	var list []vm.VM
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &list) != nil || len(list) != 1 {
		t.Errorf("list: %d %s", rec.Code, rec.Body)
	}

	// Operations that need a running hypervisor conflict with defined.
	for _, op := range []string{"pause", "resume", "stop"} {
		expectError(t, ts.do("POST", "/api/v1/vms/web/"+op, nil), http.StatusConflict, "")
	}
	expectError(t, ts.do("POST", "/api/v1/vms/web/stop?timeout=abc", nil), http.StatusBadRequest, "timeout")
	expectError(t, ts.do("POST", "/api/v1/vms/web/stop?timeout=0", nil), http.StatusBadRequest, "timeout")
	expectError(t, ts.do("POST", "/api/v1/vms/web/stop?timeout=601", nil), http.StatusBadRequest, "timeout")
	expectError(t, ts.do("POST", "/api/v1/vms/web/stop?force=maybe", nil), http.StatusBadRequest, "force")

	rec = ts.do("GET", "/api/v1/vms/web/console/log", nil)
	if rec.Code != http.StatusOK || rec.Body.Len() != 0 {
		t.Errorf("console log of a never-started VM: %d %q", rec.Code, rec.Body)
	}
	expectError(t, ts.do("GET", "/api/v1/vms/web/console/log?bytes=0", nil), http.StatusBadRequest, "bytes")
	expectError(t, ts.do("GET", "/api/v1/vms/web/console/log?bytes=99999999999", nil), http.StatusBadRequest, "bytes")

	rec = ts.do("DELETE", "/api/v1/vms/web", nil)
	if rec.Code != http.StatusNoContent || rec.Body.Len() != 0 {
		t.Errorf("delete: %d %s", rec.Code, rec.Body)
	}
	expectError(t, ts.do("DELETE", "/api/v1/vms/web", nil), http.StatusNotFound, "")
	expectError(t, ts.do("GET", "/api/v1/vms/web", nil), http.StatusNotFound, "")
	expectError(t, ts.do("POST", "/api/v1/vms/web/start", nil), http.StatusNotFound, "")
	expectError(t, ts.do("GET", "/api/v1/vms/web/console/log", nil), http.StatusNotFound, "")

	// The name is free again.
	if rec := ts.do("POST", "/api/v1/vms", ts.spec("web", nil)); rec.Code != http.StatusCreated {
		t.Errorf("re-create: %d %s", rec.Code, rec.Body)
	}
}

func TestHTTPCreateErrors(t *testing.T) {
	ts := newTestServer(t)
	tests := []struct {
		desc  string
		body  io.Reader
		code  int
		field string
	}{
		{"missing kernel", ts.spec("a", func(m map[string]any) { m["kernel"] = filepath.Join(ts.dir, "nope") }), 400, "kernel"},
		{"no kernel", ts.spec("a", func(m map[string]any) { delete(m, "kernel") }), 400, "kernel"},
		{"relative kernel", ts.spec("a", func(m map[string]any) { m["kernel"] = "vmlinuz" }), 400, "kernel"},
		{"memory 0", ts.spec("a", func(m map[string]any) { m["memory_mib"] = 0 }), 400, "memory_mib"},
		{"memory absurd", ts.spec("a", func(m map[string]any) { m["memory_mib"] = 1 << 40 }), 400, "memory_mib"},
		{"bad name", ts.spec("../a", nil), 400, "name"},
		{"bad accel", ts.spec("a", func(m map[string]any) { m["accel"] = "xen" }), 400, "accel"},
		{"duplicate MAC", ts.spec("a", func(m map[string]any) {
			m["nics"] = []map[string]any{{"mac": "52:54:00:00:00:01"}, {"mac": "52:54:00:00:00:01"}}
		}), 400, "nics[1].mac"},
		{"unknown field", strings.NewReader(`{"name":"a","memory_mib":64,"kernel":"/k","cpus":2}`), 400, "cpus"},
		{"wrong type", strings.NewReader(`{"name":"a","memory_mib":"64"}`), 400, "memory_mib"},
		{"malformed", strings.NewReader(`{"name":`), 400, ""},
		{"empty", strings.NewReader(``), 400, ""},
		{"two objects", strings.NewReader(`{"name":"a"}{"name":"b"}`), 400, ""},
		{"body over 1 MiB", strings.NewReader(`{"name":"a","cmdline":"` + strings.Repeat("x", MaxBodyBytes) + `"}`), 413, ""},
		{"padding over 1 MiB", strings.NewReader(`{"name":"a"}` + strings.Repeat(" ", MaxBodyBytes)), 413, ""},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			expectError(t, ts.do("POST", "/api/v1/vms", tc.body), tc.code, tc.field)
		})
	}
	// Nothing was created by any of them.
	rec := ts.do("GET", "/api/v1/vms", nil)
	if strings.TrimSpace(rec.Body.String()) != "[]" {
		t.Errorf("VMs after failed creates: %s", rec.Body)
	}
}

func TestHTTPUnknownRoutes(t *testing.T) {
	ts := newTestServer(t)
	for _, tc := range []struct{ method, path string }{
		{"GET", "/"},
		{"GET", "/api/v1/nope"},
		{"GET", "/api/v2/vms"},
		{"PUT", "/api/v1/vms"},
		{"PATCH", "/api/v1/vms"},
		{"GET", "/api/v1/vms/web/start"},
		{"POST", "/api/v1/health"},
	} {
		e := expectError(t, ts.do(tc.method, tc.path, nil), http.StatusNotFound, "")
		if !strings.Contains(e.Error, tc.path) {
			t.Errorf("%s %s: error %q does not name the path", tc.method, tc.path, e.Error)
		}
	}
	expectError(t, ts.do("GET", "/api/v1/vms/nope", nil), http.StatusNotFound, "")
}

func TestHTTPInfoRoutes(t *testing.T) {
	ts := newTestServer(t)
	rec := ts.do("GET", "/api/v1/health", nil)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"ok"`) {
		t.Errorf("health: %d %s", rec.Code, rec.Body)
	}
	rec = ts.do("GET", "/api/v1/openapi.json", nil)
	if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), OpenAPI()) || rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("openapi.json: %d, %d bytes", rec.Code, rec.Body.Len())
	}
	rec = ts.do("GET", "/api/v1/version", nil)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"version": "test"`) {
		t.Errorf("version: %d %s", rec.Code, rec.Body)
	}
	rec = ts.do("GET", "/api/v1/host", nil)
	var info Info
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &info) != nil || info.Accel.Name != "tcg" || info.Backend != "qemu" {
		t.Errorf("host: %d %s", rec.Code, rec.Body)
	}
}

func TestHTTPMetrics(t *testing.T) {
	ts := newTestServer(t)
	if rec := ts.do("POST", "/api/v1/vms", ts.spec("m1", nil)); rec.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	ts.do("GET", "/api/v1/vms/nope", nil)
	rec := ts.do("GET", "/metrics", nil)
	if rec.Code != 200 {
		t.Fatalf("metrics: %d", rec.Code)
	}
	body := rec.Body.String()
	for _, want := range []string{
		`bulwark_vms{state="defined"} 1`,
		`bulwark_vms{state="running"} 0`,
		`bulwark_vm_starts_total 0`,
		`bulwark_api_requests_total{code="201",op="createVM"} 1`,
		`bulwark_api_requests_total{code="404",op="getVM"} 1`,
		`bulwark_api_request_seconds_bucket`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
