package api

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// hostileBodies are malformed or hostile request bodies every route must
// refuse with a 4xx and a JSON error, losing nothing.
var hostileBodies = []string{
	``, `null`, `[]`, `"x"`, `{`, `{}}`, `{"name":1}`, `{"name":"a","name":"b"}`,
	`{"name":"..","user":"../admin","role":"Administrator","path":"/../"}`,
	`{"user":"admin","ttl_seconds":-1}`, `{"privilege":"VM.*"}`, `{"groups":["admins","admins/../x"]}`,
	`{"password":"` + strings.Repeat("p", 300) + `"}`, "{\"name\":\"\xff\xfe\"}",
	strings.Repeat(`{"a":`, 200) + `1` + strings.Repeat(`}`, 200),
	`{"name":"a"} {"name":"b"}`, `{"name":"` + strings.Repeat("a", 70) + `"}`,
}

// Every route that takes a body, with every hostile body, as the local root
// and as a user with no rights: never a 5xx (503 for an unconfigured
// service aside), always a JSON error, and no user, role, entry or token
// appears or disappears.
func TestEveryRouteRefusesHostileBodies(t *testing.T) {
	ts, acc := newAccessTestServer(t)
	ts.do("POST", "/api/v1/users", body(`{"name":"nobody"}`))
	ts.do("POST", "/api/v1/roles", body(`{"name":"r1"}`))
	tok := ts.token("nobody")
	before := func() (int, int, int, int) {
		return len(acc.Users()), len(acc.Roles()), len(acc.Permissions()), len(acc.Tokens())
	}
	u0, r0, p0, t0 := before()
	rep := strings.NewReplacer("{name}", "nobody", "{id}", "zz", "{priv}", "VM.Audit")
	for _, rt := range Routes() {
		if rt.Method == "GET" {
			continue
		}
		path := rep.Replace(rt.Path)
		if strings.Contains(rt.Path, "/roles/{name}") {
			path = strings.Replace(rep.Replace(strings.ReplaceAll(rt.Path, "{name}", "r1")), "nobody", "r1", 1)
		}
		for _, b := range hostileBodies {
			for _, who := range []string{"root", "nobody"} {
				var rec *httptest.ResponseRecorder
				if who == "root" {
					rec = ts.do(rt.Method, path, body(b))
				} else {
					rec = ts.as(tok, rt.Method, path, body(b))
				}
				if rec.Code >= 500 && rec.Code != 503 || rec.Code < 200 {
					t.Errorf("%s %s as %s with %.40q: %d %s", rt.Method, path, who, b, rec.Code, rec.Body)
				}
				if rec.Code >= 400 && !strings.HasPrefix(strings.TrimSpace(rec.Body.String()), `{`) {
					t.Errorf("%s %s as %s with %.40q: %d without a JSON error: %q", rt.Method, path, who, b, rec.Code, rec.Body)
				}
			}
		}
	}
	// The hostile bodies may not change the access configuration, except
	// through routes without a body that the root may call (DELETE of the
	// fixtures), which this test names.
	u1, r1, p1, t1 := before()
	if u1 > u0 || r1 > r0 || p1 > p0 || t1 > t0 {
		t.Errorf("hostile bodies created objects: users %d->%d roles %d->%d entries %d->%d tokens %d->%d", u0, u1, r0, r1, p0, p1, t0, t1)
	}
}
