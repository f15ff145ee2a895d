package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/access"
)

func newAccessTestServer(t *testing.T) (*testServer, *access.Service) {
	ts := newNetTestServer(t)
	acc, err := access.New(context.Background(), ts.st)
	if err != nil {
		t.Fatal(err)
	}
	ts.srv.SetAccess(acc)
	return ts, acc
}

// as sends a request with a bearer token from a non-root peer.
func (ts *testServer) as(token, method, path string, body io.Reader) *httptest.ResponseRecorder {
	ts.t.Helper()
	req := httptest.NewRequest(method, path, body)
	req = req.WithContext(context.WithValue(req.Context(), callerKey{}, Caller{User: "unknown", UID: 1000, Source: "unix"}))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	ts.srv.ServeHTTP(rec, req)
	return rec
}

func (ts *testServer) token(user string) string {
	ts.t.Helper()
	rec := ts.do("POST", "/api/v1/tokens", body(`{"user":"`+user+`"}`))
	if rec.Code != 201 {
		ts.t.Fatalf("token for %s: %d %s", user, rec.Code, rec.Body)
	}
	var out struct{ Secret string }
	json.Unmarshal(rec.Body.Bytes(), &out)
	return out.Secret
}

// A user whose only role is empty gets 403 from every route but the public
// ones; without credentials every non-public route answers 401.
func TestEmptyRoleForbiddenEverywhere(t *testing.T) {
	ts, _ := newAccessTestServer(t)
	ts.do("POST", "/api/v1/users", body(`{"name":"alice"}`))
	ts.do("POST", "/api/v1/roles", body(`{"name":"empty"}`))
	if rec := ts.do("POST", "/api/v1/permissions", body(`{"user":"alice","role":"empty","path":"/","propagate":true}`)); rec.Code != 201 {
		t.Fatalf("grant: %d %s", rec.Code, rec.Body)
	}
	tok := ts.token("alice")
	r := strings.NewReplacer("{name}", "x1", "{id}", "abc", "{priv}", "VM.Audit")
	for _, rt := range Routes() {
		path := r.Replace(rt.Path)
		rec := ts.as(tok, rt.Method, path, body(`{}`))
		want := http.StatusForbidden
		switch {
		case rt.List || rt.Self:
			want = http.StatusOK // and nothing in the list (checked below)
		case rt.OpID == "login":
			want = http.StatusBadRequest // public, but `{}` names no user
		case rt.Public:
			want = http.StatusOK
		}
		if rt.List && rec.Code == http.StatusServiceUnavailable {
			want = rec.Code // the service behind it is not configured in this test
		}
		if rec.Code != want {
			t.Errorf("%s %s as a user with an empty role: %d, want %d (%s)", rt.Method, path, rec.Code, want, rec.Body)
		}
		if rt.List && rt.OpID != "listTokens" && rec.Code == 200 {
			if b := strings.TrimSpace(rec.Body.String()); b != "[]" && b != "" {
				t.Errorf("%s %s as a user with an empty role shows %s", rt.Method, path, b)
			}
		}
		if !rt.Public {
			if rec := ts.as("", rt.Method, path, body(`{}`)); rec.Code != http.StatusUnauthorized {
				t.Errorf("%s %s without credentials: %d, want 401", rt.Method, path, rec.Code)
			}
		}
	}
}

func TestTokensAndRevocation(t *testing.T) {
	ts, _ := newAccessTestServer(t)
	ts.do("POST", "/api/v1/users", body(`{"name":"bob"}`))
	rec := ts.do("POST", "/api/v1/permissions", body(`{"user":"bob","role":"ReadOnly","path":"/vms","propagate":true}`))
	if rec.Code != 201 {
		t.Fatalf("grant: %d %s", rec.Code, rec.Body)
	}
	var perm access.Permission
	json.Unmarshal(rec.Body.Bytes(), &perm)
	if rec := ts.do("POST", "/api/v1/vms", ts.spec("x1", nil)); rec.Code != 201 {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	tok := ts.token("bob")
	if rec := ts.as(tok, "GET", "/api/v1/vms", nil); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"x1"`) {
		t.Fatalf("bob lists VMs: %d %s", rec.Code, rec.Body)
	}
	// Read-only on /vms: no power operations, nothing elsewhere.
	if rec := ts.as(tok, "POST", "/api/v1/vms", ts.spec("x", nil)); rec.Code != 403 {
		t.Errorf("bob creates a VM: %d", rec.Code)
	}
	if rec := ts.as(tok, "GET", "/api/v1/security-groups", nil); rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != "[]" {
		t.Errorf("bob reads security groups (sees none): %d %s", rec.Code, rec.Body)
	}
	// Malformed and forged credentials.
	for _, h := range []string{"Bearer", "Basic Ym9iOng=", "Bearer bwk_forged", "bearer  "} {
		req := httptest.NewRequest("GET", "/api/v1/vms", nil)
		req = req.WithContext(context.WithValue(req.Context(), callerKey{}, Caller{UID: 1000, Source: "unix"}))
		req.Header.Set("Authorization", h)
		rr := httptest.NewRecorder()
		ts.srv.ServeHTTP(rr, req)
		if rr.Code != 401 {
			t.Errorf("Authorization %q: %d", h, rr.Code)
		}
	}
	// Revoking the permission takes effect on the next request.
	if rec := ts.do("DELETE", "/api/v1/permissions/"+perm.ID, nil); rec.Code != 204 {
		t.Fatalf("revoke: %d %s", rec.Code, rec.Body)
	}
	if rec := ts.as(tok, "GET", "/api/v1/vms/x1", nil); rec.Code != 403 {
		t.Errorf("after revoke: %d", rec.Code)
	}
	if rec := ts.as(tok, "GET", "/api/v1/vms", nil); rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != "[]" {
		t.Errorf("after revoke, the list still shows VMs: %d %s", rec.Code, rec.Body)
	}
	// Disabling the user ends their token.
	ts.do("POST", "/api/v1/permissions", body(`{"user":"bob","role":"ReadOnly","path":"/","propagate":true}`))
	if rec := ts.do("PATCH", "/api/v1/users/bob", body(`{"disabled":true}`)); rec.Code != 200 {
		t.Fatalf("disable: %d %s", rec.Code, rec.Body)
	}
	if rec := ts.as(tok, "GET", "/api/v1/vms", nil); rec.Code != 401 {
		t.Errorf("disabled user's token: %d", rec.Code)
	}
	// A revoked token stops at once.
	ts.do("PATCH", "/api/v1/users/bob", body(`{"disabled":false}`))
	tok2 := ts.token("bob")
	var toks []access.Token
	json.Unmarshal(ts.do("GET", "/api/v1/tokens", nil).Body.Bytes(), &toks)
	for _, tk := range toks {
		ts.do("DELETE", "/api/v1/tokens/"+tk.ID, nil)
	}
	if rec := ts.as(tok2, "GET", "/api/v1/vms", nil); rec.Code != 401 {
		t.Errorf("revoked token: %d", rec.Code)
	}
}

func TestNoEscalation(t *testing.T) {
	ts, _ := newAccessTestServer(t)
	for _, u := range []string{"carol", "dave"} {
		ts.do("POST", "/api/v1/users", body(`{"name":"`+u+`"}`))
	}
	ts.do("POST", "/api/v1/roles", body(`{"name":"delegate"}`))
	for _, p := range []string{"Permission.Manage", "VM.Audit", "VM.PowerOn"} {
		if rec := ts.do("POST", "/api/v1/roles/delegate/privileges", body(`{"privilege":"`+p+`"}`)); rec.Code != 200 {
			t.Fatalf("add %s: %d %s", p, rec.Code, rec.Body)
		}
	}
	expectError(t, ts.do("POST", "/api/v1/roles/delegate/privileges", body(`{"privilege":"VM.Fly"}`)), 400, "privilege")
	expectError(t, ts.do("POST", "/api/v1/roles/Administrator/privileges", body(`{"privilege":"VM.Audit"}`)), 403, "")
	ts.do("POST", "/api/v1/permissions", body(`{"user":"carol","role":"delegate","path":"/","propagate":true}`))
	tok := ts.token("carol")
	cases := []struct {
		body string
		code int
	}{
		{`{"user":"dave","role":"Administrator","path":"/","propagate":true}`, 403}, // more than carol holds
		{`{"user":"carol","role":"delegate","path":"/vms","propagate":true}`, 403},  // herself
		{`{"user":"dave","role":"VMOperator","path":"/vms","propagate":true}`, 403}, // VMOperator has VM.PowerOff, carol does not
		{`{"user":"dave","role":"delegate","path":"/vms/../users","propagate":true}`, 400},
		{`{"user":"dave","role":"delegate","path":"/vms","propagate":true}`, 201}, // within her own power
	}
	for _, c := range cases {
		if rec := ts.as(tok, "POST", "/api/v1/permissions", body(c.body)); rec.Code != c.code {
			t.Errorf("carol grants %s: %d, want %d (%s)", c.body, rec.Code, c.code, rec.Body)
		}
	}
}

// A scoped token can do no more than its scope, even when its user can.
func TestScopedToken(t *testing.T) {
	ts, _ := newAccessTestServer(t)
	ts.do("POST", "/api/v1/users", body(`{"name":"erin"}`))
	ts.do("POST", "/api/v1/permissions", body(`{"user":"erin","role":"Administrator","path":"/","propagate":true}`))
	rec := ts.do("POST", "/api/v1/tokens", body(`{"user":"erin","scope":["VM.Audit"]}`))
	if rec.Code != 201 {
		t.Fatalf("scoped token: %d %s", rec.Code, rec.Body)
	}
	var out struct{ Secret string }
	json.Unmarshal(rec.Body.Bytes(), &out)
	if rec := ts.as(out.Secret, "GET", "/api/v1/vms", nil); rec.Code != 200 {
		t.Errorf("scoped token reads VMs: %d", rec.Code)
	}
	if rec := ts.as(out.Secret, "GET", "/api/v1/security-groups", nil); rec.Code != 403 || !strings.Contains(rec.Body.String(), "scope") {
		t.Errorf("scoped token outside its scope: %d %s", rec.Code, rec.Body)
	}
	expectError(t, ts.do("POST", "/api/v1/tokens", body(`{"user":"erin","scope":["VM.Fly"]}`)), 400, "scope[0]")
}

// Delegation below the root: Permission.Manage on /vms lets a delegate grant
// there, not elsewhere, and revoke only entries there.
func TestDelegatedGrant(t *testing.T) {
	ts, _ := newAccessTestServer(t)
	for _, u := range []string{"lead", "dev"} {
		ts.do("POST", "/api/v1/users", body(`{"name":"`+u+`"}`))
	}
	ts.do("POST", "/api/v1/roles", body(`{"name":"vmlead"}`))
	for _, p := range []string{"Permission.Manage", "VM.Audit", "VM.PowerOn", "VM.PowerOff", "VM.Console", "Monitor.Read"} {
		ts.do("POST", "/api/v1/roles/vmlead/privileges", body(`{"privilege":"`+p+`"}`))
	}
	if rec := ts.do("POST", "/api/v1/permissions", body(`{"user":"lead","role":"vmlead","path":"/vms","propagate":true}`)); rec.Code != 201 {
		t.Fatalf("grant lead: %d %s", rec.Code, rec.Body)
	}
	tok := ts.token("lead")
	rec := ts.as(tok, "POST", "/api/v1/permissions", body(`{"user":"dev","role":"VMOperator","path":"/vms/web1","propagate":true}`))
	if rec.Code != 201 {
		t.Fatalf("lead grants under /vms: %d %s", rec.Code, rec.Body)
	}
	var p struct{ ID string }
	json.Unmarshal(rec.Body.Bytes(), &p)
	if rec := ts.as(tok, "POST", "/api/v1/permissions", body(`{"user":"dev","role":"VMOperator","path":"/networks/n1","propagate":true}`)); rec.Code != 403 {
		t.Errorf("lead grants outside /vms: %d", rec.Code)
	}
	if rec := ts.as(tok, "DELETE", "/api/v1/permissions/"+p.ID, nil); rec.Code != 204 {
		t.Errorf("lead revokes their own grant under /vms: %d %s", rec.Code, rec.Body)
	}
	rootEntry := ts.do("POST", "/api/v1/permissions", body(`{"user":"dev","role":"ReadOnly","path":"/","propagate":true}`))
	var rp struct{ ID string }
	json.Unmarshal(rootEntry.Body.Bytes(), &rp)
	if rec := ts.as(tok, "DELETE", "/api/v1/permissions/"+rp.ID, nil); rec.Code != 403 {
		t.Errorf("lead revokes an entry on /: %d", rec.Code)
	}
}

// TestHostPathsNeedPrivilege: a user who may create VMs may name files of
// the image directories, but not other host paths (the daemon opens them
// as root: /etc/shadow as a disk would be read by the guest), nor a disk
// that is not a regular file; the local administrator may.
func TestHostPathsNeedPrivilege(t *testing.T) {
	ts, _ := newAccessTestServer(t)
	images := t.TempDir()
	ts.srv.SetImageDirs([]string{images})
	kernel := images + "/vmlinuz"
	if err := os.WriteFile(kernel, []byte("k"), 0o600); err != nil {
		t.Fatal(err)
	}
	outside := ts.dir + "/secret"
	os.WriteFile(outside, []byte("s"), 0o600)
	os.Symlink(outside, images+"/link")
	if rec := ts.do("POST", "/api/v1/users", body(`{"name":"carol"}`)); rec.Code != 201 {
		t.Fatalf("user: %d %s", rec.Code, rec.Body)
	}
	if rec := ts.do("POST", "/api/v1/roles", body(`{"name":"creator"}`)); rec.Code != 201 {
		t.Fatalf("role: %d %s", rec.Code, rec.Body)
	}
	for _, p := range []string{"VM.Create", "VM.Config", "VM.Audit"} {
		if rec := ts.do("POST", "/api/v1/roles/creator/privileges", body(`{"privilege":"`+p+`"}`)); rec.Code/100 != 2 {
			t.Fatalf("role privilege %s: %d %s", p, rec.Code, rec.Body)
		}
	}
	if rec := ts.do("POST", "/api/v1/permissions", body(`{"user":"carol","role":"creator","path":"/","propagate":true}`)); rec.Code != 201 {
		t.Fatalf("grant: %d %s", rec.Code, rec.Body)
	}
	tok := ts.token("carol")
	create := func(name, kernel string, disks ...string) *httptest.ResponseRecorder {
		return ts.as(tok, "POST", "/api/v1/vms", ts.spec(name, func(m map[string]any) {
			m["kernel"] = kernel
			var ds []map[string]any
			for _, d := range disks {
				ds = append(ds, map[string]any{"path": d, "read_only": true})
			}
			if ds != nil {
				m["disks"] = ds
			}
		}))
	}
	if rec := create("ok", kernel); rec.Code != 201 {
		t.Fatalf("kernel in the image directory: %d %s", rec.Code, rec.Body)
	}
	for name, rec := range map[string]*httptest.ResponseRecorder{
		"kernel outside":     create("k1", outside),
		"disk outside":       create("d1", kernel, "/etc/shadow"),
		"link out of images": create("l1", kernel, images+"/link"),
		"dot-dot":            create("p1", images+"/../secret"),
		"block device":       create("b1", kernel, "/dev/null"),
	} {
		if rec.Code != 403 || !strings.Contains(rec.Body.String(), "VM.HostPaths") {
			t.Errorf("%s: %d %s, want 403 naming VM.HostPaths", name, rec.Code, rec.Body)
		}
	}
	// An image file attached read-write would let one VM change what every
	// other VM booting from it runs.
	shared := filepath.Join(images, "shared.img")
	os.WriteFile(shared, make([]byte, 4096), 0o600)
	rw := ts.as(tok, "POST", "/api/v1/vms", ts.spec("rw", func(m map[string]any) {
		m["kernel"] = kernel
		m["disks"] = []map[string]any{{"path": shared}}
	}))
	if rw.Code != 403 || !strings.Contains(rw.Body.String(), "read_only") {
		t.Errorf("image file read-write: %d %s", rw.Code, rw.Body)
	}
	if rec := create("ro", kernel, shared); rec.Code != 201 {
		t.Errorf("image file read-only: %d %s", rec.Code, rec.Body)
	}
	// The local administrator holds every privilege.
	if rec := ts.do("POST", "/api/v1/vms", ts.spec("adm", func(m map[string]any) { m["kernel"] = outside })); rec.Code != 201 {
		t.Fatalf("administrator with a host path: %d %s", rec.Code, rec.Body)
	}
}
