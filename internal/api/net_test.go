package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/netsw"
)

func newNetTestServer(t *testing.T) *testServer {
	ts := newTestServer(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sw := netsw.New(log, nil)
	t.Cleanup(sw.Close)
	svc, err := netsw.NewService(context.Background(), sw, ts.st, filepath.Join(ts.dir, "sw"), log)
	if err != nil {
		t.Fatal(err)
	}
	ts.mgr.SetNetwork(svc)
	ts.srv.SetNetwork(svc, filepath.Join(ts.dir, "fw.jsonl"))
	return ts
}

func body(s string) io.Reader { return strings.NewReader(s) }

func TestHTTPNetworkErrors(t *testing.T) {
	ts := newNetTestServer(t)
	cases := []struct {
		path, body string
		code       int
		field      string
	}{
		{"/api/v1/networks", `{"name":"lab","subnet":"10.0.0/24"}`, 400, "subnet"},
		{"/api/v1/networks", `{"name":"lab","subnet":"10.0.0.1/24"}`, 400, "subnet"},
		{"/api/v1/networks", `{"name":"lab","subnet":"10.0.0.0/24","gateway":"10.1.0.1"}`, 400, "gateway"},
		{"/api/v1/networks", `{"name":"lab","subnet":"10.0.0.0/24","default_ingress":"maybe"}`, 400, "default_ingress"},
		{"/api/v1/networks", `{"name":"lab","subnet":"10.0.0.0/24","uplink":{"kind":"interface","interface":"no-such-if0"}}`, 400, "uplink"},
		{"/api/v1/networks", `{"name":"Lab","subnet":"10.0.0.0/24"}`, 400, "name"},
		{"/api/v1/networks", `{"name":"lab","subnet":"10.0.0.0/24","colour":"red"}`, 400, "colour"},
		{"/api/v1/security-groups", `{"name":"../web"}`, 400, "name"},
		{"/api/v1/ip-sets", `{"name":"s","cidrs":["10.0.0.0/33"]}`, 400, "cidrs"},
	}
	for _, c := range cases {
		expectError(t, ts.do("POST", c.path, body(c.body)), c.code, c.field)
	}
	if rec := ts.do("POST", "/api/v1/networks", body(`{"name":"lab","subnet":"10.0.0.0/24"}`)); rec.Code != 201 {
		t.Fatalf("create network: %d %s", rec.Code, rec.Body)
	}
	expectError(t, ts.do("POST", "/api/v1/networks", body(`{"name":"lab","subnet":"10.9.0.0/24"}`)), 409, "")
	if rec := ts.do("POST", "/api/v1/security-groups", body(`{"name":"web"}`)); rec.Code != 201 {
		t.Fatalf("create group: %d %s", rec.Code, rec.Body)
	}
	// Invalid rules are refused with a message naming the problem; the group is unchanged.
	for _, r := range []string{
		`{"direction":"ingress","action":"allow","protocol":"tcp","port_min":70000,"port_max":70000}`,
		`{"direction":"ingress","action":"allow","remote_cidr":"10.0.0/8"}`,
		`{"direction":"ingress","action":"allow","remote_group":"nosuch"}`,
		`{"direction":"sideways","action":"allow"}`,
		`{"direction":"ingress"}`,
		`{"direction":"ingress","action":"allow","protocol":"icmp","port_min":1,"port_max":2}`,
	} {
		rec := ts.do("POST", "/api/v1/security-groups/web/rules", body(r))
		if rec.Code != 400 {
			t.Errorf("rule %s: %d %s", r, rec.Code, rec.Body)
		}
	}
	rec := ts.do("GET", "/api/v1/security-groups/web", nil)
	var g map[string]any
	json.Unmarshal(rec.Body.Bytes(), &g)
	if rules, _ := g["rules"].([]any); len(rules) != 0 {
		t.Errorf("refused rules were kept: %v", g)
	}
	// A valid rule gets an id; removing an unknown id is 404.
	rec = ts.do("POST", "/api/v1/security-groups/web/rules", body(`{"direction":"ingress","action":"allow","protocol":"tcp","port_min":22,"port_max":22}`))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"id": "r1"`) {
		t.Fatalf("add rule: %d %s", rec.Code, rec.Body)
	}
	expectError(t, ts.do("DELETE", "/api/v1/security-groups/web/rules/r9", nil), 404, "")

	// VM NICs are checked against networks, groups and addresses.
	for _, c := range []struct {
		nic   string
		field string
	}{
		{`{"network":"nope"}`, "nics[0].network"},
		{`{"network":"lab","groups":["nope"]}`, "nics[0].groups[0]"},
		{`{"network":"lab","ip":"10.9.9.9"}`, "nics[0].ip"},
		{`{"network":"lab","ip":"10.0.0.255"}`, "nics[0].ip"},
	} {
		spec := ts.spec("v1", func(m map[string]any) {
			var nic map[string]any
			json.Unmarshal([]byte(c.nic), &nic)
			m["nics"] = []any{nic}
		})
		expectError(t, ts.do("POST", "/api/v1/vms", spec), 400, c.field)
	}
	spec := ts.spec("v1", func(m map[string]any) { m["nics"] = []any{map[string]any{"network": "lab", "groups": []string{"web"}}} })
	rec = ts.do("POST", "/api/v1/vms", spec)
	if rec.Code != 201 || !strings.Contains(rec.Body.String(), `"ip": "10.0.0.1"`) {
		t.Fatalf("VM with auto address: %d %s", rec.Code, rec.Body)
	}
	spec = ts.spec("v2", func(m map[string]any) { m["nics"] = []any{map[string]any{"network": "lab", "ip": "10.0.0.1"}} })
	expectError(t, ts.do("POST", "/api/v1/vms", spec), 400, "nics[0].ip")
	var v1 struct {
		Spec struct {
			NICs []struct{ MAC string } `json:"nics"`
		} `json:"spec"`
	}
	json.Unmarshal(ts.do("GET", "/api/v1/vms/v1", nil).Body.Bytes(), &v1)
	spec = ts.spec("v2", func(m map[string]any) {
		m["nics"] = []any{map[string]any{"network": "lab", "mac": v1.Spec.NICs[0].MAC}}
	})
	expectError(t, ts.do("POST", "/api/v1/vms", spec), 400, "nics[0].mac")

	// Objects in use cannot be deleted.
	expectError(t, ts.do("DELETE", "/api/v1/networks/lab", nil), http.StatusConflict, "")
	expectError(t, ts.do("DELETE", "/api/v1/security-groups/web", nil), http.StatusConflict, "")
	if rec := ts.do("DELETE", "/api/v1/vms/v1", nil); rec.Code != 204 {
		t.Fatalf("delete vm: %d", rec.Code)
	}
	for _, p := range []string{"/api/v1/security-groups/web", "/api/v1/networks/lab"} {
		if rec := ts.do("DELETE", p, nil); rec.Code != 204 {
			t.Fatalf("delete %s: %d %s", p, rec.Code, rec.Body)
		}
	}
}
