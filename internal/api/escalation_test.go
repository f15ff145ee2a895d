package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// The escalations an attacker found with User.Manage alone: a token for the
// administrator, the administrator's password, membership of the
// administrators' group. Each is now refused, names why, and leaves the
// attacker without new power.
func TestUserManagerCannotBecomeAdministrator(t *testing.T) {
	ts, acc := newAccessTestServer(t)
	for _, u := range []string{"admin", "mallory", "bob"} {
		ts.do("POST", "/api/v1/users", body(`{"name":"`+u+`"}`))
	}
	ts.do("PATCH", "/api/v1/users/admin", body(`{"groups":["admins"]}`))
	mustCode(t, ts.do("POST", "/api/v1/permissions", body(`{"group":"admins","role":"Administrator","path":"/","propagate":true}`)), 201)
	ts.do("POST", "/api/v1/roles", body(`{"name":"usermgr"}`))
	ts.do("POST", "/api/v1/roles/usermgr/privileges", body(`{"privilege":"User.Manage"}`))
	mustCode(t, ts.do("POST", "/api/v1/permissions", body(`{"user":"mallory","role":"usermgr","path":"/users","propagate":true}`)), 201)
	tok := ts.token("mallory")

	for _, c := range []struct{ what, method, path, body string }{
		{"token for the administrator", "POST", "/api/v1/tokens", `{"user":"admin"}`},
		{"the administrator's password", "POST", "/api/v1/users/admin/password", `{"password":"correct horse battery staple"}`},
		{"bob into the administrators' group", "PATCH", "/api/v1/users/bob", `{"groups":["admins"]}`},
		{"disabling the administrator", "PATCH", "/api/v1/users/admin", `{"disabled":true}`},
		{"deleting the administrator", "DELETE", "/api/v1/users/admin", ``},
		{"herself into the administrators' group", "PATCH", "/api/v1/users/mallory", `{"groups":["admins"]}`},
	} {
		rec := ts.as(tok, c.method, c.path, body(c.body))
		if rec.Code != http.StatusForbidden {
			t.Errorf("%s: %d %s, want 403", c.what, rec.Code, rec.Body)
		} else if !strings.Contains(rec.Body.String(), "admin") && !strings.Contains(rec.Body.String(), "own groups") &&
			!strings.Contains(rec.Body.String(), "would give user") {
			t.Errorf("%s: the refusal does not say why: %s", c.what, rec.Body)
		}
	}
	if acc.Privileges("mallory", "/").Len() != 0 || acc.Privileges("bob", "/").Len() != 0 {
		t.Errorf("mallory or bob gained power: %v / %v", acc.Privileges("mallory", "/"), acc.Privileges("bob", "/"))
	}
	// What mallory may still do: manage users no more powerful than her.
	mustCode(t, ts.as(tok, "POST", "/api/v1/tokens", body(`{"user":"bob"}`)), 201)
	mustCode(t, ts.as(tok, "PATCH", "/api/v1/users/bob", body(`{"groups":["staff"]}`)), 200)
}

// Re-enabling a user, or lifting them into a group, gives power like a grant
// does; a VM creator cannot attach NICs to networks or groups without
// Network.Attach there.
func TestEnableAndAttachNeedThePower(t *testing.T) {
	ts, _ := newAccessTestServer(t)
	for _, u := range []string{"ops", "carol"} {
		ts.do("POST", "/api/v1/users", body(`{"name":"`+u+`"}`))
	}
	ts.do("POST", "/api/v1/roles", body(`{"name":"um"}`))
	for _, p := range []string{"User.Manage", "VM.Create", "VM.Audit"} {
		ts.do("POST", "/api/v1/roles/um/privileges", body(`{"privilege":"`+p+`"}`))
	}
	mustCode(t, ts.do("POST", "/api/v1/permissions", body(`{"user":"ops","role":"um","path":"/","propagate":true}`)), 201)
	mustCode(t, ts.do("POST", "/api/v1/permissions", body(`{"user":"carol","role":"NetworkAdmin","path":"/networks","propagate":true}`)), 201)
	ts.do("PATCH", "/api/v1/users/carol", body(`{"disabled":true}`))
	tok := ts.token("ops")
	rec := ts.as(tok, "PATCH", "/api/v1/users/carol", body(`{"disabled":false}`))
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "Network") {
		t.Errorf("enabling a user holding more than the actor: %d %s", rec.Code, rec.Body)
	}
	spec := `{"name":"v1","memory_mib":64,"kernel":"` + ts.kernel + `","nics":[{"network":"lan"}]}`
	ts.srv.SetImageDirs([]string{ts.dir})
	rec = ts.as(tok, "POST", "/api/v1/vms", body(spec))
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "Network.Attach on /networks/lan") {
		t.Errorf("NIC on a network without Network.Attach: %d %s", rec.Code, rec.Body)
	}
}

func mustCode(t *testing.T, rec interface{ Result() *http.Response }, want int) {
	t.Helper()
	if got := rec.Result().StatusCode; got != want {
		t.Fatalf("status %d, want %d", got, want)
	}
}

// User and group names follow the rules of VM names: no "..", "/", "@",
// upper case or spaces, which would make odd object paths and log lines.
func TestUserAndGroupNames(t *testing.T) {
	ts, _ := newAccessTestServer(t)
	for _, n := range []string{"..", "a/b", "@x", "Alice", "a b", "-a", "root", ""} {
		rec := ts.do("POST", "/api/v1/users", body(`{"name":"`+n+`"}`))
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `"field": "name"`) {
			t.Errorf("user name %q: %d %s", n, rec.Code, rec.Body)
		}
	}
	mustCode(t, ts.do("POST", "/api/v1/users", body(`{"name":"ops-1"}`)), 201)
	for _, g := range []string{"../admins", "Admins", "a/b"} {
		rec := ts.do("PATCH", "/api/v1/users/ops-1", body(`{"groups":["`+g+`"]}`))
		if rec.Code != http.StatusBadRequest {
			t.Errorf("group name %q: %d %s", g, rec.Code, rec.Body)
		}
	}
	// The privilege catalogue has names and descriptions (the CLI printed
	// <nil> when they were missing).
	rec := ts.do("GET", "/api/v1/privileges", nil)
	if !strings.Contains(rec.Body.String(), `"name": "VM.Audit"`) || !strings.Contains(rec.Body.String(), `"description": "Read a VM`) {
		t.Errorf("privileges: %s", rec.Body)
	}
	// A role in use cannot be deleted; the error names the entry.
	ts.do("POST", "/api/v1/roles", body(`{"name":"r1"}`))
	mustCode(t, ts.do("POST", "/api/v1/permissions", body(`{"user":"ops-1","role":"r1","path":"/vms"}`)), 201)
	if rec := ts.do("DELETE", "/api/v1/roles/r1", nil); rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), "permission entries") {
		t.Errorf("deleting a role in use: %d %s", rec.Code, rec.Body)
	}
	if rec := ts.do("DELETE", "/api/v1/roles/VMOperator", nil); rec.Code != http.StatusForbidden && rec.Code != http.StatusNotFound {
		t.Errorf("deleting a built-in role: %d %s", rec.Code, rec.Body)
	}
	ts.do("POST", "/api/v1/roles", body(`{"name":"r2"}`))
	mustCode(t, ts.do("DELETE", "/api/v1/roles/r2", nil), 204)
}

// A token limited to some privileges cannot mint a stronger one, for its
// own user or another, nor set a password (which gives full rights at the
// next login).
func TestScopedTokenCannotWidenItself(t *testing.T) {
	ts, _ := newAccessTestServer(t)
	for _, u := range []string{"ann", "ben"} {
		ts.do("POST", "/api/v1/users", body(`{"name":"`+u+`"}`))
	}
	ts.do("POST", "/api/v1/roles", body(`{"name":"um"}`))
	for _, p := range []string{"User.Manage", "VM.Audit", "VM.PowerOn"} {
		ts.do("POST", "/api/v1/roles/um/privileges", body(`{"privilege":"`+p+`"}`))
	}
	mustCode(t, ts.do("POST", "/api/v1/permissions", body(`{"user":"ann","role":"um","path":"/","propagate":true}`)), 201)
	rec := ts.do("POST", "/api/v1/tokens", body(`{"user":"ann","scope":["User.Manage"]}`))
	mustCode(t, rec, 201)
	var out struct{ Secret string }
	json.Unmarshal(rec.Body.Bytes(), &out)
	for _, c := range []struct{ what, method, path, body string }{
		{"an unscoped token for itself", "POST", "/api/v1/tokens", `{"user":"ann"}`},
		{"a wider token for itself", "POST", "/api/v1/tokens", `{"user":"ann","scope":["User.Manage","VM.PowerOn"]}`},
		{"an unscoped token for a weaker user", "POST", "/api/v1/tokens", `{"user":"ben"}`},
		{"its own password", "POST", "/api/v1/users/ann/password", `{"password":"correct horse battery staple"}`},
	} {
		if rec := ts.as(out.Secret, c.method, c.path, body(c.body)); rec.Code != http.StatusForbidden {
			t.Errorf("scoped token, %s: %d %s", c.what, rec.Code, rec.Body)
		}
	}
	mustCode(t, ts.as(out.Secret, "POST", "/api/v1/tokens", body(`{"user":"ben","scope":["User.Manage"]}`)), 201)
}
