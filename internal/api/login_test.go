package api

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/access"
	"github.com/bulwark-project/bulwark/internal/audit"
)

const testPassword = "correct horse battery staple"

// newLoginTestServer is an access test server with an audit log and a user
// alice who holds ReadOnly on /vms and has testPassword.
func newLoginTestServer(t *testing.T) (*testServer, *audit.Log) {
	t.Helper()
	ts, _ := newAccessTestServer(t)
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	log, err := audit.Open(context.Background(), filepath.Join(ts.dir, "audit"), key, 100)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	ts.srv.SetAudit(log)
	ts.do("POST", "/api/v1/users", body(`{"name":"alice"}`))
	if rec := ts.do("POST", "/api/v1/permissions", body(`{"user":"alice","role":"ReadOnly","path":"/vms","propagate":true}`)); rec.Code != 201 {
		t.Fatalf("grant: %d %s", rec.Code, rec.Body)
	}
	if rec := ts.do("POST", "/api/v1/users/alice/password", body(`{"password":"`+testPassword+`"}`)); rec.Code != 204 {
		t.Fatalf("set password: %d %s", rec.Code, rec.Body)
	}
	return ts, log
}

// login posts to /login as a peer with no credentials from source.
func (ts *testServer) login(source, user, password string) *httptest.ResponseRecorder {
	ts.t.Helper()
	b, _ := json.Marshal(map[string]string{"user": user, "password": password})
	req := httptest.NewRequest("POST", "/api/v1/login", strings.NewReader(string(b)))
	req = req.WithContext(context.WithValue(req.Context(), callerKey{}, Caller{User: "unknown", UID: -1, Source: source}))
	rec := httptest.NewRecorder()
	ts.srv.ServeHTTP(rec, req)
	return rec
}

// loginAs posts to /login as caller (e.g. a Unix socket peer with a uid).
func (ts *testServer) loginAs(c Caller, user, password string) *httptest.ResponseRecorder {
	ts.t.Helper()
	b, _ := json.Marshal(map[string]string{"user": user, "password": password})
	req := httptest.NewRequest("POST", "/api/v1/login", strings.NewReader(string(b)))
	req = req.WithContext(context.WithValue(req.Context(), callerKey{}, c))
	rec := httptest.NewRecorder()
	ts.srv.ServeHTTP(rec, req)
	return rec
}

func sessionSecret(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	if rec.Code != 200 {
		t.Fatalf("login: %d %s", rec.Code, rec.Body)
	}
	var out struct {
		Token  access.Token `json:"token"`
		Secret string       `json:"secret"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	if out.Token.Kind != access.KindSession || out.Token.User != "alice" || out.Token.Hash != "" || out.Secret == "" {
		t.Fatalf("login answer %s", rec.Body)
	}
	return out.Secret
}

func auditRecords(t *testing.T, log *audit.Log, user string) []audit.Record {
	t.Helper()
	recs, err := log.List(context.Background(), audit.Filter{User: user})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestLoginSessionAndAudit(t *testing.T) {
	ts, log := newLoginTestServer(t)
	expectError(t, ts.do("POST", "/api/v1/users/alice/password", body(`{"password":"short"}`)), 400, "password")
	expectError(t, ts.do("POST", "/api/v1/users/nobody/password", body(`{"password":"`+testPassword+`"}`)), 404, "")
	expectError(t, ts.login("192.0.2.1:40000", "", testPassword), 400, "user")

	// A session works for what alice holds, and only that.
	secret := sessionSecret(t, ts.login("192.0.2.1:40000", "alice", testPassword))
	if rec := ts.as(secret, "GET", "/api/v1/vms", nil); rec.Code != 200 {
		t.Errorf("session lists VMs: %d %s", rec.Code, rec.Body)
	}
	if rec := ts.as(secret, "GET", "/api/v1/users", nil); rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != "[]" {
		t.Errorf("session lists users (may see none): %d %s", rec.Code, rec.Body)
	}

	// Wrong password and unknown user: one answer.
	wrong := expectError(t, ts.login("192.0.2.1:40001", "alice", "not the password"), 401, "")
	unknown := expectError(t, ts.login("192.0.2.1:40002", "mallory", testPassword), 401, "")
	if wrong.Error != "invalid credentials" || unknown.Error != wrong.Error {
		t.Errorf("wrong password %q, unknown user %q: want both \"invalid credentials\"", wrong.Error, unknown.Error)
	}

	// Both outcomes are audited under the name tried, with the source.
	var results []string
	for _, r := range auditRecords(t, log, "alice") {
		if r.Action != audit.ActionLogin {
			continue
		}
		results = append(results, r.Result)
		if r.Source != "192.0.2.1:40000" && r.Source != "192.0.2.1:40001" {
			t.Errorf("login record source %q", r.Source)
		}
		if strings.Contains(r.Detail, testPassword) {
			t.Errorf("audit detail holds the password: %q", r.Detail)
		}
	}
	if strings.Join(results, ",") != "ok,denied" {
		t.Errorf("alice's login records: %v, want ok,denied", results)
	}
	if recs := auditRecords(t, log, "mallory"); len(recs) != 1 || recs[0].Result != audit.ResultDenied {
		t.Errorf("mallory's records: %+v", recs)
	}

	// Disabling alice ends her session at once.
	if rec := ts.do("PATCH", "/api/v1/users/alice", body(`{"disabled":true}`)); rec.Code != 200 {
		t.Fatalf("disable: %d %s", rec.Code, rec.Body)
	}
	if rec := ts.as(secret, "GET", "/api/v1/vms", nil); rec.Code != 401 {
		t.Errorf("disabled user's session: %d", rec.Code)
	}
	expectError(t, ts.login("192.0.2.1:40003", "alice", testPassword), 401, "")
}

func TestLoginLockout(t *testing.T) {
	ts, log := newLoginTestServer(t)
	ts.do("POST", "/api/v1/users", body(`{"name":"bob"}`))
	ts.do("POST", "/api/v1/users/bob/password", body(`{"password":"`+testPassword+`"}`))
	for i := range access.MaxLoginFailures {
		if rec := ts.login("198.51.100.7:1000", "alice", "not the password"); rec.Code != 401 {
			t.Fatalf("failure %d: %d %s", i+1, rec.Code, rec.Body)
		}
	}
	// Locked from that address (any port), even with the right password.
	rec := ts.login("198.51.100.7:1001", "alice", testPassword)
	e := expectError(t, rec, http.StatusTooManyRequests, "")
	if ra := rec.Header().Get("Retry-After"); ra != "900" && ra != "899" {
		t.Errorf("Retry-After %q, want about 900", ra)
	}
	if !strings.Contains(e.Error, "locked until") || !strings.Contains(e.Error, "from this address") {
		t.Errorf("lockout message %q does not say what is locked and until when", e.Error)
	}
	recs := auditRecords(t, log, "alice")
	last := recs[len(recs)-1]
	if last.Action != audit.ActionLogin || last.Result != audit.ResultDenied || !strings.Contains(last.Detail, "429") {
		t.Errorf("locked-out attempt audited as %+v", last)
	}
	// Another user at that address, and alice elsewhere, are not locked.
	sessionSecret(t, ts.login("203.0.113.9:2000", "alice", testPassword))
	if rec := ts.login("198.51.100.7:1002", "bob", testPassword); rec.Code != 200 {
		t.Errorf("bob at alice's locked address: %d %s", rec.Code, rec.Body)
	}
}

// The defect this guards against: on the Unix socket every login used to
// share one lockout key, so five failures of one user locked out all. The
// address part is now the peer's uid.
func TestLoginLockoutUnixSocket(t *testing.T) {
	ts, _ := newLoginTestServer(t)
	ts.do("POST", "/api/v1/users", body(`{"name":"bob"}`))
	ts.do("POST", "/api/v1/users/bob/password", body(`{"password":"`+testPassword+`"}`))
	root := Caller{User: "root", UID: 0, Source: "unix"}
	other := Caller{User: "ops", UID: 1000, Source: "unix"}
	for range access.MaxLoginFailures {
		ts.loginAs(root, "alice", "not the password")
	}
	expectError(t, ts.loginAs(root, "alice", testPassword), http.StatusTooManyRequests, "")
	if rec := ts.loginAs(root, "bob", testPassword); rec.Code != 200 {
		t.Errorf("bob on the socket after alice's failures: %d %s", rec.Code, rec.Body)
	}
	if rec := ts.loginAs(other, "alice", testPassword); rec.Code != 200 {
		t.Errorf("alice from another uid: %d %s", rec.Code, rec.Body)
	}
}

// One address cannot try a few passwords on each of many names: past
// MaxSourceFailures it is locked for every name, with the reason logged.
func TestLoginLockoutSpraying(t *testing.T) {
	ts, _ := newLoginTestServer(t)
	var logs strings.Builder
	ts.srv.log = slog.New(slog.NewTextHandler(&logs, nil))
	for i := range access.MaxSourceFailures {
		if rec := ts.login("[2001:db8::7]:1000", fmt.Sprint("user", i), "guess"); rec.Code != 401 {
			t.Fatalf("failure %d: %d %s", i+1, rec.Code, rec.Body)
		}
	}
	// The whole /64 is one address; the next /64 is another.
	e := expectError(t, ts.login("[2001:db8::8]:1000", "alice", testPassword), http.StatusTooManyRequests, "")
	if !strings.Contains(e.Error, "(this address)") {
		t.Errorf("lockout message %q does not say the address is locked", e.Error)
	}
	sessionSecret(t, ts.login("[2001:db8:0:1::7]:1000", "alice", testPassword))
	// Every refusal is attributable: reason, user and address.
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	var refused []string
	for _, l := range lines {
		if strings.Contains(l, "login refused") {
			refused = append(refused, l)
		}
	}
	if len(refused) != access.MaxSourceFailures+1 {
		t.Fatalf("%d refusals logged, want %d:\n%s", len(refused), access.MaxSourceFailures+1, logs.String())
	}
	for _, want := range []string{`reason="invalid credentials" user=user0 address=2001:db8::/64`, "user=alice address=2001:db8::/64",
		`reason="locked out: too many failed logins (this address): locked until`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

// A malformed login is refused with a log line too, and a huge name is
// cut in it.
func TestLoginRefusalLogged(t *testing.T) {
	ts, _ := newLoginTestServer(t)
	var logs strings.Builder
	ts.srv.log = slog.New(slog.NewTextHandler(&logs, nil))
	expectError(t, ts.login("192.0.2.1:1", "", "pw"), http.StatusBadRequest, "user")
	expectError(t, ts.login("192.0.2.1:1", strings.Repeat("x", 4096), "pw"), http.StatusUnauthorized, "")
	out := logs.String()
	if !strings.Contains(out, `reason="bad request: user is required" user="" address=192.0.2.1`) {
		t.Errorf("bad request not logged:\n%s", out)
	}
	if !strings.Contains(out, "(4096 bytes)") || len(out) > 2048 {
		t.Errorf("a 4 KiB name is not cut in the log (%d bytes):\n%.300s", len(out), out)
	}
}

func TestLoginSource(t *testing.T) {
	for _, tc := range []struct {
		caller Caller
		want   string
	}{
		{Caller{Source: "unix", UID: 0}, "unix:uid=0"},
		{Caller{Source: "unix", UID: 1000}, "unix:uid=1000"},
		{Caller{Source: "192.0.2.1:40000"}, "192.0.2.1"},
		{Caller{Source: "192.0.2.1:40001"}, "192.0.2.1"},
		{Caller{Source: "[::ffff:192.0.2.1]:40001"}, "192.0.2.1"},
		{Caller{Source: "[2001:db8:1:2:3:4:5:6]:443"}, "2001:db8:1:2::/64"},
		{Caller{Source: "[fe80::1%eth0]:443"}, "fe80::/64"},
		{Caller{Source: "unknown"}, "unknown"},
	} {
		if got := loginSource(tc.caller); got != tc.want {
			t.Errorf("loginSource(%+v) = %q, want %q", tc.caller, got, tc.want)
		}
	}
}

// The password and its hash never leave the daemon.
func TestPasswordNeverReturned(t *testing.T) {
	ts, log := newLoginTestServer(t)
	secret := sessionSecret(t, ts.login("unix", "alice", testPassword))
	ts.token("alice")
	var bodies []string
	for _, rec := range []*httptest.ResponseRecorder{
		ts.do("GET", "/api/v1/users", nil),
		ts.do("PATCH", "/api/v1/users/alice", body(`{"groups":["ops"]}`)),
		ts.do("POST", "/api/v1/users", body(`{"name":"bob"}`)),
		ts.do("GET", "/api/v1/tokens", nil),
		ts.do("GET", "/api/v1/audit", nil),
		ts.as(secret, "GET", "/api/v1/vms", nil),
		ts.login("unix", "alice", testPassword),
	} {
		if rec.Code >= 300 {
			t.Errorf("%d %s", rec.Code, rec.Body)
		}
		bodies = append(bodies, rec.Body.String())
	}
	var export strings.Builder
	if err := log.ExportJSONL(context.Background(), &export, audit.Filter{}); err != nil {
		t.Fatal(err)
	}
	bodies = append(bodies, export.String())
	for _, b := range bodies {
		for _, bad := range []string{"password_hash", "$argon2id", testPassword} {
			if strings.Contains(b, bad) {
				t.Errorf("response holds %q: %s", bad, b)
			}
		}
	}
	var users []map[string]any
	json.Unmarshal([]byte(bodies[0]), &users)
	if len(users) != 1 || users[0]["name"] != "alice" {
		t.Errorf("users: %s", bodies[0])
	}
}

// A browser session: the login sets an HttpOnly cookie that authenticates
// reads, and changes only with the CSRF header.
func TestSessionCookie(t *testing.T) {
	ts, _ := newAccessTestServer(t)
	ts.do("POST", "/api/v1/users", body(`{"name":"web"}`))
	ts.do("POST", "/api/v1/users/web/password", body(`{"password":"a long enough password"}`))
	ts.do("POST", "/api/v1/permissions", body(`{"user":"web","role":"Administrator","path":"/","propagate":true}`))
	rec := ts.as("", "POST", "/api/v1/login", body(`{"user":"web","password":"a long enough password"}`))
	if rec.Code != 200 {
		t.Fatalf("login: %d %s", rec.Code, rec.Body)
	}
	var cookie *http.Cookie
	for _, c := range rec.Result().Cookies() {
		if c.Name == SessionCookie {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode {
		t.Fatalf("session cookie %+v", cookie)
	}
	send := func(method, path string, csrf bool) int {
		req := httptest.NewRequest(method, path, body(`{"name":"made-by-cookie"}`))
		req = req.WithContext(context.WithValue(req.Context(), callerKey{}, Caller{UID: 1000, Source: "127.0.0.1:1"}))
		req.AddCookie(cookie)
		if csrf {
			req.Header.Set(CSRFHeader, "1")
		}
		rr := httptest.NewRecorder()
		ts.srv.ServeHTTP(rr, req)
		return rr.Code
	}
	if c := send("GET", "/api/v1/vms", false); c != 200 {
		t.Errorf("cookie read: %d", c)
	}
	if c := send("POST", "/api/v1/users", false); c != 401 {
		t.Errorf("cookie change without the CSRF header: %d, want 401", c)
	}
	if c := send("POST", "/api/v1/users", true); c != 201 {
		t.Errorf("cookie change with the CSRF header: %d", c)
	}
}
