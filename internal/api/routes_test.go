package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// openapiOp is the part of an OpenAPI operation the route table must match.
type openapiOp struct {
	OperationID string `json:"operationId"`
	Privilege   string `json:"x-bulwark-privilege"`
}

var httpMethods = map[string]bool{
	"get": true, "put": true, "post": true, "delete": true, "options": true, "head": true, "patch": true, "trace": true,
}

// openapiOps parses the embedded document into "METHOD path" → operation.
func openapiOps(t *testing.T) map[string]openapiOp {
	t.Helper()
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi version %q, want 3.x", doc.OpenAPI)
	}
	ops := map[string]openapiOp{}
	for path, item := range doc.Paths {
		for method, raw := range item {
			if !httpMethods[method] {
				continue // path-level parameters, summary, ...
			}
			var op openapiOp
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("openapi.json %s %s: %v", method, path, err)
			}
			ops[strings.ToUpper(method)+" "+path] = op
		}
	}
	return ops
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	ops := openapiOps(t)
	seen := map[string]bool{}
	opIDs := map[string]bool{}
	for _, rt := range Routes() {
		key := rt.Method + " " + rt.Path
		if rt.Method != strings.ToUpper(rt.Method) {
			t.Errorf("route %s: method must be upper case", key)
		}
		if seen[key] {
			t.Errorf("route %s declared twice", key)
		}
		seen[key] = true
		if opIDs[rt.OpID] {
			t.Errorf("operationId %q used twice", rt.OpID)
		}
		opIDs[rt.OpID] = true

		op, ok := ops[key]
		if !ok {
			t.Errorf("route %s is missing from openapi.json (edit scripts/gen-openapi.py and regenerate)", key)
			continue
		}
		if op.OperationID != rt.OpID {
			t.Errorf("%s: operationId %q in openapi.json, %q in routes", key, op.OperationID, rt.OpID)
		}
		wantPriv := rt.Priv
		switch {
		case rt.Public:
			wantPriv = "public"
		case rt.Self:
			wantPriv = "authenticated"
		}
		if op.Privilege != wantPriv {
			t.Errorf("%s: x-bulwark-privilege %q in openapi.json, want %q", key, op.Privilege, wantPriv)
		}
	}
	for key := range ops {
		if !seen[key] {
			t.Errorf("openapi.json documents %s, which no route serves", key)
		}
	}
}

func TestEveryRouteDeclaresPrivilege(t *testing.T) {
	known := map[string]bool{PrivVMAudit: true, PrivVMCreate: true, PrivVMDelete: true, PrivVMPowerOn: true,
		PrivVMPowerOff: true, PrivVMConsole: true, PrivMonitor: true,
		PrivNetAudit: true, PrivNetConfig: true, PrivFWRead: true, PrivFWConfig: true, PrivAuditRead: true,
		PrivUserManage: true, PrivRoleManage: true, PrivPermManage: true, PrivVMConfig: true, PrivMonitorRespond: true,
		PrivDatastoreAudit: true, PrivDatastoreAllocate: true, PrivVMSnapshot: true, PrivAttestRead: true, PrivAttestConfig: true, PrivPoolAudit: true, PrivPoolConfig: true, PrivPoolAllocate: true,
		PrivIPSRead: true, PrivIPSConfig: true, PrivNetMirror: true}
	for _, rt := range Routes() {
		key := rt.Method + " " + rt.Path
		if rt.Handler == nil {
			t.Errorf("%s has no handler", key)
		}
		if rt.OpID == "" {
			t.Errorf("%s has no operationId", key)
		}
		if rt.Public {
			if rt.Priv != "" {
				t.Errorf("%s is public but names privilege %q", key, rt.Priv)
			}
			continue
		}
		if rt.Self {
			if rt.Priv != "" {
				t.Errorf("%s describes the caller but names privilege %q", key, rt.Priv)
			}
			continue
		}
		if rt.Priv == "" || rt.Object == nil {
			t.Errorf("%s is not public and lacks a privilege (%q) or an object (%v)", key, rt.Priv, rt.Object != nil)
			continue
		}
		if !known[rt.Priv] {
			t.Errorf("%s needs unknown privilege %q", key, rt.Priv)
		}
	}
}

// Only the liveness check, the API description and login may be public;
// anything else added as public needs a deliberate change here. Login is
// the one public POST: the password in its body is the credential.
func TestPublicRoutes(t *testing.T) {
	for _, rt := range Routes() {
		want := rt.OpID == "health" || rt.OpID == "openapi" || rt.OpID == "login"
		if rt.Public != want {
			t.Errorf("%s %s: Public=%v, want %v", rt.Method, rt.Path, rt.Public, want)
		}
		if rt.Method != http.MethodGet && rt.Public && rt.OpID != "login" {
			t.Errorf("%s %s: a public route that changes state", rt.Method, rt.Path)
		}
	}
}

// The object a route checks the privilege on is derived from the request
// path: per-VM routes name that VM.
func TestRouteObjects(t *testing.T) {
	for _, rt := range Routes() {
		if rt.Object == nil {
			continue
		}
		path := strings.ReplaceAll(strings.ReplaceAll(rt.Path, "{name}", "web-1"), "{pool}", "default")
		var got string
		mux := http.NewServeMux()
		mux.HandleFunc(rt.Method+" "+rt.Path, func(w http.ResponseWriter, r *http.Request) { got = rt.Object(r) })
		mux.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(rt.Method, path, nil))
		want := "/"
		coll := strings.Split(strings.TrimPrefix(rt.Path, "/api/v1/"), "/")[0]
		switch {
		case coll == "storage":
			// Volumes are /storage/POOL/volumes/NAME; a new volume (create,
			// import) is checked on its pool.
			want = "/storage"
			if strings.Contains(rt.Path, "{pool}") {
				want = "/storage/default"
			}
			if strings.Contains(rt.Path, "{name}") && rt.OpID != "importVolume" {
				want = "/storage/default/volumes/web-1"
			}
		case coll == "ips" || coll == "mirrors":
			// The IPS and the mirror sessions are host-wide: one object each.
			want = "/" + coll
		case coll == "service-chains":
			// A chain redirects flows between VMs of networks.
			want = "/networks"
		case strings.Contains(rt.Path, "{name}"):
			want = "/" + coll + "/web-1"
		case coll == "vms" || coll == "networks" || coll == "security-groups" || coll == "ip-sets" || coll == "images" || coll == "pools":
			want = "/" + coll
		case coll == "ports":
			want = "/networks"
		case coll == "firewall":
			want = "/security-groups"
		case coll == "audit" || coll == "console":
			want = "/audit"
		case coll == "attestation":
			want = "/attestation"
		case coll == "tokens" || coll == "users":
			want = "/users"
		case coll == "roles" || coll == "privileges":
			want = "/roles"
		}
		if got != want {
			t.Errorf("%s %s: object %q, want %q", rt.Method, rt.Path, got, want)
		}
	}
}
