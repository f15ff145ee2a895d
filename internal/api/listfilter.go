package api

import (
	"bytes"
	"encoding/json"
	"net/http"
)

// List routes (Route.List) return only the objects the caller may see:
// authorization checks the caller's identity and token scope, and the
// handler keeps each object on which the caller holds the route's
// privilege (VM.Audit on /vms/NAME for the VM list, and so on). A caller
// who may see nothing gets an empty list, which tells them nothing.

// visible returns a predicate: whether the request's caller holds priv on
// an object path. Without an access service only the local root is served,
// who sees everything.
func (s *Server) visible(r *http.Request, priv string) func(obj string) bool {
	if s.access == nil {
		return func(string) bool { return true }
	}
	user := CallerFrom(r.Context()).User
	return func(obj string) bool { return s.access.Allowed(user, priv, obj) }
}

// filterSlice keeps the elements whose object path see admits.
func filterSlice[T any](in []T, see func(string) bool, path func(T) string) []T {
	out := make([]T, 0, len(in))
	for _, x := range in {
		if see(path(x)) {
			out = append(out, x)
		}
	}
	return out
}

// compactListLen is the length from which lists are sent without
// indentation: indenting a 5,000-VM list costs four times its encoding.
const compactListLen = 100

// writeList writes a list, indented when short (for people reading it raw)
// and compact when long.
func writeList[T any](w http.ResponseWriter, items []T) error {
	if len(items) < compactListLen {
		return writeJSON(w, http.StatusOK, items)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	return json.NewEncoder(w).Encode(items)
}

// filterLines keeps the JSON lines of data whose string field key names an
// object (prefix + value) that see admits; lines without it, or that do not
// parse, are dropped. data comes from Bulwark's own logs, which the guest
// can influence only through escaped field values.
func filterLines(data []byte, key, prefix string, see func(string) bool) []byte {
	var out bytes.Buffer
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i+1], data[i+1:]
		} else {
			data = nil
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(line, &m) != nil {
			continue
		}
		var v string
		if json.Unmarshal(m[key], &v) != nil || v == "" {
			continue
		}
		if see(prefix + v) {
			out.Write(line)
		}
	}
	return out.Bytes()
}
