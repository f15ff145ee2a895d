package api

import (
	"fmt"
	"net/http"
	"strings"
)

// noRoute answers a request that matches no route: 404, naming the method
// and path, with a hint when the path ends in '/' (no API path does, and
// the mux does not redirect: a redirect would re-send a body or a
// credential somewhere the client did not ask for).
func noRoute(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, noRouteMsg(r, ""), "")
}

func noRouteMsg(r *http.Request, why string) string {
	msg := "no route for " + r.Method + " " + r.URL.EscapedPath()
	if why != "" {
		return msg + ": " + why
	}
	if p := r.URL.Path; len(p) > 1 && strings.HasSuffix(p, "/") {
		msg += fmt.Sprintf(": API paths do not end in '/' (did you mean %s?)", strings.TrimRight(p, "/"))
	}
	return msg
}

// refuseSlashInNames guards the route's handler h: a request whose path
// wildcard ({name}, {id}, ...) holds a '/' is answered like one no route
// serves (404) before authorization. Such a value can only come from an
// escaped slash ("web1%2F", what `bulwark vm show web1/` sends): the object
// path built from it ("/vms/web1/") is not canonical, so authorization
// refused it with a 403 that wrongly suggested a missing privilege, and no
// object is ever named with a '/'.
func refuseSlashInNames(rt Route, h http.Handler) http.Handler {
	names := patternWildcards(rt.Path)
	if len(names) == 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, n := range names {
			v := r.PathValue(n)
			if !strings.Contains(v, "/") {
				continue
			}
			why := fmt.Sprintf("{%s} %q holds a '/', which no %s does", n, v, n)
			if t := strings.TrimRight(v, "/"); t != "" && !strings.Contains(t, "/") {
				why += " (a trailing '/' is not part of any API path)"
			}
			writeError(w, http.StatusNotFound, noRouteMsg(r, why), "")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// patternWildcards lists the single-segment wildcards of a ServeMux
// pattern's path ("{name}"); multi-segment ones ("{rest...}") may hold '/'
// and are left out.
func patternWildcards(path string) []string {
	var out []string
	for _, seg := range strings.Split(path, "/") {
		if len(seg) > 2 && seg[0] == '{' && seg[len(seg)-1] == '}' && !strings.HasSuffix(seg, "...}") {
			out = append(out, seg[1:len(seg)-1])
		}
	}
	return out
}
