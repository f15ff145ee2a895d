package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/vm"
)

// Every list route returns only the objects the caller may see. One user,
// viewer, is given a view of some objects of each kind and not others; each
// list must show exactly those.
func TestListFilteringMatrix(t *testing.T) {
	ts, _ := newAccessTestServer(t)
	root := func(method, path, b string) {
		t.Helper()
		if rec := ts.do(method, path, body(b)); rec.Code >= 300 {
			t.Fatalf("%s %s: %d %s", method, path, rec.Code, rec.Body)
		}
	}
	for _, v := range []string{"a", "b", "x"} {
		if rec := ts.do("POST", "/api/v1/vms", ts.spec(v, nil)); rec.Code != 201 {
			t.Fatalf("create %s: %d %s", v, rec.Code, rec.Body)
		}
	}
	for i, n := range []string{"n1", "n2"} {
		root("POST", "/api/v1/networks", fmt.Sprintf(`{"name":%q,"subnet":"10.%d.0.0/24"}`, n, i+1))
	}
	for _, g := range []string{"sg1", "sg2"} {
		root("POST", "/api/v1/security-groups", `{"name":"`+g+`"}`)
		root("POST", "/api/v1/security-groups/"+g+"/rules", `{"direction":"ingress","action":"allow","protocol":"tcp","port_min":22,"port_max":22}`)
	}
	for _, x := range []string{"s1", "s2"} {
		root("POST", "/api/v1/ip-sets", `{"name":"`+x+`","cidrs":["10.9.0.0/24"]}`)
	}
	for _, u := range []string{"viewer", "u1", "u2"} {
		root("POST", "/api/v1/users", `{"name":"`+u+`"}`)
	}
	for _, r := range []string{"r1", "r2"} {
		root("POST", "/api/v1/roles", `{"name":"`+r+`"}`)
	}
	root("POST", "/api/v1/roles/r1/privileges", `{"privilege":"Role.Manage"}`)
	root("POST", "/api/v1/roles", `{"name":"um"}`)
	root("POST", "/api/v1/roles/um/privileges", `{"privilege":"User.Manage"}`)
	root("POST", "/api/v1/roles", `{"name":"pm"}`)
	root("POST", "/api/v1/roles/pm/privileges", `{"privilege":"Permission.Manage"}`)
	grant := func(role, path string, prop bool) {
		root("POST", "/api/v1/permissions", fmt.Sprintf(`{"user":"viewer","role":%q,"path":%q,"propagate":%t}`, role, path, prop))
	}
	grant("VMOperator", "/vms", true)
	grant("NoAccess", "/vms/x", false)
	grant("NetworkAdmin", "/networks/n1", false)
	grant("ReadOnly", "/security-groups/sg1", false)
	grant("ReadOnly", "/ip-sets/s1", false)
	grant("um", "/users/u1", false)
	grant("r1", "/roles/r1", false)
	grant("pm", "/vms", true)
	root("POST", "/api/v1/permissions", `{"user":"u2","role":"ReadOnly","path":"/networks","propagate":true}`)
	root("POST", "/api/v1/tokens", `{"user":"u1","description":"u1's"}`)
	root("POST", "/api/v1/tokens", `{"user":"u2","description":"u2's"}`)
	tok := ts.token("viewer")

	names := func(route string, key string) []string {
		t.Helper()
		rec := ts.as(tok, "GET", route, nil)
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", route, rec.Code, rec.Body)
		}
		var items []map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &items); err != nil {
			t.Fatalf("GET %s: %v", route, err)
		}
		var out []string
		for _, it := range items {
			v := it[key]
			if key == "spec.name" {
				v = it["spec"].(map[string]any)["name"]
			}
			out = append(out, fmt.Sprint(v))
		}
		sort.Strings(out)
		return slices.Compact(out)
	}
	for _, c := range []struct {
		route, key string
		want       []string
	}{
		{"/api/v1/vms", "spec.name", []string{"a", "b"}},
		{"/api/v1/networks", "name", []string{"n1"}},
		{"/api/v1/security-groups", "name", []string{"sg1"}},
		{"/api/v1/ip-sets", "name", []string{"s1"}},
		{"/api/v1/firewall/rule-hits", "group", []string{"sg1"}},
		{"/api/v1/users", "name", []string{"u1"}},
		{"/api/v1/roles", "Name", []string{"r1"}},
		{"/api/v1/permissions", "path", []string{"/vms"}}, // NoAccess on /vms/x hides its entry
		{"/api/v1/tokens", "user", []string{"u1", "viewer"}},
	} {
		if got := names(c.route, c.key); !slices.Equal(got, c.want) {
			t.Errorf("GET %s shows %v, want %v", c.route, got, c.want)
		}
	}
	// Switch ports: only those on networks the caller may read.
	svc := ts.srv.net
	for i, n := range []string{"n1", "n2"} {
		nic := vm.NIC{Network: n, MAC: fmt.Sprintf("52:54:00:00:00:0%d", i+1), IP: fmt.Sprintf("10.%d.0.5", i+1)}
		if _, err := svc.Attach("p"+n, 0, ts.dir, []vm.NIC{nic}); err != nil {
			t.Fatalf("attach a port on %s: %v", n, err)
		}
	}
	if got := names("/api/v1/ports", "network"); !slices.Equal(got, []string{"n1"}) {
		t.Errorf("GET /api/v1/ports shows networks %v, want [n1]", got)
	}
	// The firewall log shows only lines of networks the caller may read.
	os.WriteFile(filepath.Join(ts.dir, "fw.jsonl"), []byte(`{"action":"drop","network":"n1","in_port":"a/nic0"}
{"action":"drop","network":"n2","in_port":"x/nic0"}
`), 0o600)
	if rec := ts.as(tok, "GET", "/api/v1/firewall/log", nil); rec.Code != 200 || strings.Contains(rec.Body.String(), "n2") || !strings.Contains(rec.Body.String(), "n1") {
		t.Errorf("firewall log for viewer: %d %q", rec.Code, rec.Body)
	}
	if rec := ts.do("GET", "/api/v1/firewall/log", nil); !strings.Contains(rec.Body.String(), "n2") {
		t.Errorf("firewall log for root lacks n2: %q", rec.Body)
	}
	// The whole definition of a hidden VM is not reachable either way.
	if rec := ts.as(tok, "GET", "/api/v1/vms/x", nil); rec.Code != http.StatusForbidden {
		t.Errorf("GET /api/v1/vms/x: %d", rec.Code)
	}
	// whoami says what the caller holds where.
	rec := ts.as(tok, "GET", "/api/v1/whoami?path=/vms/a", nil)
	var who struct {
		User       string
		Privileges []string
	}
	json.Unmarshal(rec.Body.Bytes(), &who)
	if rec.Code != 200 || who.User != "viewer" || !slices.Contains(who.Privileges, "VM.PowerOn") || slices.Contains(who.Privileges, "VM.Delete") {
		t.Errorf("whoami: %d %s", rec.Code, rec.Body)
	}
	rec = ts.as(tok, "GET", "/api/v1/whoami?path=/vms/x", nil)
	if !strings.Contains(rec.Body.String(), `"privileges": []`) {
		t.Errorf("whoami on a masked VM: %s", rec.Body)
	}
	expectError(t, ts.as(tok, "GET", "/api/v1/whoami?path=/vms/", nil), 400, "path")
}

func TestFilterLines(t *testing.T) {
	data := []byte(`{"vm":"a","kind":"k"}
{"vm":"x","kind":"k"}
not json
{"kind":"no vm"}
{"vm":"b"}`)
	see := func(obj string) bool { return obj != "/vms/x" }
	got := string(filterLines(data, "vm", "/vms/", see))
	want := "{\"vm\":\"a\",\"kind\":\"k\"}\n{\"vm\":\"b\"}"
	if got != want {
		t.Errorf("filterLines = %q, want %q", got, want)
	}
}
