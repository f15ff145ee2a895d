package api

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// A path with a trailing '/' (plain, or escaped as %2F inside a name, which
// is what `bulwark vm show web1/` sends) is a 404 that names the problem,
// for every route and every caller: never a 403 suggesting a missing
// privilege, never a 401, never a redirect.
func TestTrailingSlash(t *testing.T) {
	ts, _ := newAccessTestServer(t)
	ts.do("POST", "/api/v1/users", body(`{"name":"alice"}`))
	ts.do("POST", "/api/v1/roles", body(`{"name":"empty"}`))
	if rec := ts.do("POST", "/api/v1/permissions", body(`{"user":"alice","role":"empty","path":"/","propagate":true}`)); rec.Code != 201 {
		t.Fatalf("grant: %d %s", rec.Code, rec.Body)
	}
	tok := ts.token("alice")
	callers := map[string]func(method, path string) (int, string){
		"root": func(m, p string) (int, string) { rec := ts.do(m, p, body(`{}`)); return rec.Code, rec.Body.String() },
		"alice": func(m, p string) (int, string) {
			rec := ts.as(tok, m, p, body(`{}`))
			return rec.Code, rec.Body.String()
		},
		"anonymous": func(m, p string) (int, string) {
			rec := ts.as("", m, p, body(`{}`))
			return rec.Code, rec.Body.String()
		},
	}
	type probe struct{ method, path, want string }
	var probes []probe
	for _, rt := range Routes() {
		plain := strings.NewReplacer("{name}", "web1", "{id}", "abc", "{priv}", "VM.Audit", "{pool}", "default", "{snap}", "s1").Replace(rt.Path)
		probes = append(probes, probe{rt.Method, plain + "/", "do not end in '/'"})
		if strings.Contains(rt.Path, "{") {
			escaped := strings.NewReplacer("{name}", "web1%2F", "{id}", "abc%2F", "{priv}", "VM.Audit%2F", "{pool}", "default%2F", "{snap}", "s1").Replace(rt.Path)
			probes = append(probes, probe{rt.Method, escaped, "a trailing '/' is not part of any API path"})
			inner := strings.NewReplacer("{name}", "a%2Fb", "{id}", "a%2Fb", "{priv}", "a%2Fb", "{pool}", "a%2Fb", "{snap}", "s1").Replace(rt.Path)
			probes = append(probes, probe{rt.Method, inner, `"a/b" holds a '/'`})
		}
	}
	probes = append(probes,
		probe{"GET", "/api/v1/vms/", "did you mean /api/v1/vms?"},
		probe{"GET", "/api/v1/users/alice/", "did you mean /api/v1/users/alice?"},
		probe{"DELETE", "/api/v1/users/alice%2F", `{name} "alice/" holds a '/'`},
		probe{"GET", "/api/v1/vms/%2F", "do not end in '/'"}, // no route matches: the fallback answers
	)
	for _, p := range probes {
		for who, call := range callers {
			code, out := call(p.method, p.path)
			var e APIError
			json.Unmarshal([]byte(out), &e)
			if code != http.StatusNotFound || !strings.Contains(e.Error, p.want) || !strings.Contains(e.Error, "no route for "+p.method) {
				t.Errorf("%s %s as %s: %d %q, want 404 saying %q", p.method, p.path, who, code, e.Error, p.want)
			}
		}
	}
	// The check is about '/', not about authorization: the same user on a
	// well-formed path is still refused with 403, an anonymous caller 401.
	if rec := ts.as(tok, "GET", "/api/v1/vms/web1", nil); rec.Code != http.StatusForbidden {
		t.Errorf("alice GET /api/v1/vms/web1: %d %s, want 403", rec.Code, rec.Body)
	}
	if rec := ts.as("", "GET", "/api/v1/vms/web1", nil); rec.Code != http.StatusUnauthorized {
		t.Errorf("anonymous GET /api/v1/vms/web1: %d %s, want 401", rec.Code, rec.Body)
	}
}

func TestPatternWildcards(t *testing.T) {
	for path, want := range map[string][]string{
		"/api/v1/vms":                               nil,
		"/api/v1/vms/{name}/start":                  {"name"},
		"/api/v1/security-groups/{name}/rules/{id}": {"name", "id"},
		"/api/v1/files/{rest...}":                   nil,
		"/api/v1/roles/{name}/privileges/{priv}":    {"name", "priv"},
		"/{}":                                       nil,
	} {
		if got := patternWildcards(path); !reflect.DeepEqual(got, want) {
			t.Errorf("patternWildcards(%q) = %q, want %q", path, got, want)
		}
	}
}
