package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"unicode"

	"github.com/bulwark-project/bulwark/internal/vm"
)

func TestDecodeSpec(t *testing.T) {
	tests := []struct {
		desc  string
		body  string
		field string // "" with ok=false: an error naming no field
		ok    bool
		msg   string // part of the error message
	}{
		{"valid", `{"name":"a","memory_mib":64,"kernel":"/k","disks":[{"path":"/d","read_only":true}],"nics":[{"mac":"52:54:00:00:00:01"}]}`, "", true, ""},
		{"valid with trailing newline", "{\"name\":\"a\"}\n", "", true, ""},
		{"valid with surrounding space", " \t{\"name\":\"a\"} \r\n ", "", true, ""},
		{"empty body", ``, "", false, "empty request body"},
		{"only whitespace", " \n\t", "", false, "empty request body"},
		{"malformed", `{"name":}`, "", false, "malformed JSON at byte"},
		{"trailing comma", `{"name":"a",}`, "", false, "malformed JSON"},
		{"single quotes", `{'name':'a'}`, "", false, "malformed JSON"},
		{"truncated", `{"name":"a"`, "", false, "truncated JSON"},
		{"truncated literal", `nul`, "", false, "truncated JSON"},
		{"trailing garbage", `{"name":"a"} x`, "", false, "exactly one JSON object"},
		{"second object", `{"name":"a"}{"name":"b"}`, "", false, "exactly one JSON object"},
		{"second object after newline", "{\"name\":\"a\"}\n{}", "", false, "exactly one JSON object"},
		{"trailing number", `{} 1`, "", false, "exactly one JSON object"},
		{"unknown field", `{"name":"a","nmae":"b"}`, "nmae", false, `unknown field "nmae"`},
		{"unknown nested field", `{"name":"a","disks":[{"path":"/d","readonly":true}]}`, "readonly", false, "unknown field"},
		{"unknown field with quote", `{"a\"b":1}`, `a"b`, false, "unknown field"},
		{"wrong type string for int", `{"vcpus":"2"}`, "vcpus", false, `field "vcpus"`},
		{"wrong type number for string", `{"name":7}`, "name", false, "expected string"},
		{"fraction for int", `{"memory_mib":1.5}`, "memory_mib", false, "memory_mib"},
		{"overflowing int", `{"memory_mib":1e100}`, "memory_mib", false, "memory_mib"},
		{"wrong type bool", `{"disks":[{"path":"/d","read_only":"yes"}]}`, "disks.read_only", false, "read_only"},
		{"wrong type nested", `{"disks":[{"path":1}]}`, "disks.path", false, "disks.path"},
		{"object for list", `{"disks":{"path":"/d"}}`, "disks", false, "disks"},
		{"array body", `[]`, "", false, "array"},
		{"string body", `"x"`, "", false, "string"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			spec, err := DecodeSpec(strings.NewReader(tc.body))
			if tc.ok {
				if err != nil {
					t.Fatalf("DecodeSpec = %v, want success", err)
				}
				if spec.Name != "a" {
					t.Errorf("name %q", spec.Name)
				}
				return
			}
			var he *httpError
			if !errors.As(err, &he) {
				t.Fatalf("DecodeSpec = %v (%T), want *httpError", err, err)
			}
			if he.code != http.StatusBadRequest {
				t.Errorf("code %d, want 400", he.code)
			}
			if he.field != tc.field {
				t.Errorf("field %q, want %q (%v)", he.field, tc.field, err)
			}
			if !strings.Contains(he.msg, tc.msg) {
				t.Errorf("message %q, want it to contain %q", he.msg, tc.msg)
			}
		})
	}
}

func TestDecodeSpecRoundTrip(t *testing.T) {
	want := vm.Spec{Name: "web", VCPUs: 2, MemoryMiB: 256, Kernel: "/boot/k", Initrd: "/boot/i", Cmdline: "quiet",
		Disks: []vm.Disk{{Path: "/d", ReadOnly: true}}, NICs: []vm.NIC{{MAC: "52:54:00:00:00:01", Network: "lan", Socket: "/s"}},
		Accel: "kvm"}
	b, _ := json.Marshal(want)
	got, err := DecodeSpec(bytes.NewReader(b))
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("DecodeSpec(Marshal(spec)) = %+v, %v; want %+v", got, err, want)
	}
}

// A body over the limit is a 413, also when the excess is trailing padding
// after a small valid object.
func TestDecodeSpecTooLarge(t *testing.T) {
	bodies := map[string]string{
		"huge string":       `{"name":"` + strings.Repeat("a", MaxBodyBytes) + `"}`,
		"padding after":     `{"name":"a"}` + strings.Repeat(" ", MaxBodyBytes),
		"unterminated huge": `{"name":"` + strings.Repeat("a", 2*MaxBodyBytes),
	}
	for desc, body := range bodies {
		r := http.MaxBytesReader(httptest.NewRecorder(), io.NopCloser(strings.NewReader(body)), MaxBodyBytes)
		_, err := DecodeSpec(r)
		var mbe *http.MaxBytesError
		if !errors.As(err, &mbe) {
			t.Errorf("%s: DecodeSpec = %v (%T), want *http.MaxBytesError", desc, err, err)
		}
	}
}

// FuzzDecodeSpec: arbitrary bodies never panic the decoder; every refusal is
// a 400 with a message (or a 413 for an oversized body); every acceptance
// survives a round trip through JSON unchanged.
func FuzzDecodeSpec(f *testing.F) {
	for _, s := range []string{
		`{"name":"a","vcpus":1,"memory_mib":64,"kernel":"/k"}`,
		`{"name":"a","disks":[{"path":"/d","read_only":true}],"nics":[{"mac":"52:54:00:00:00:01","socket":"/s"}]}`,
		`{"nme":1}`, `{"vcpus":"x"}`, `{"disks":[{"path":1}]}`, `{} {}`, `{} x`, ``, ` `, `nul`, `[]`, `null`,
		`{"name":"\u00e9\ud800"}`, `{"a\"b":1}`, `{"memory_mib":1e400}`, `{"name":"a"}` + strings.Repeat(" ", 600),
	} {
		f.Add([]byte(s))
	}
	const limit = 512 // small, so the fuzzer reaches the size limit too
	f.Fuzz(func(t *testing.T, data []byte) {
		r := http.MaxBytesReader(httptest.NewRecorder(), io.NopCloser(bytes.NewReader(data)), limit)
		spec, err := DecodeSpec(r)
		if err != nil {
			var (
				he  *httpError
				mbe *http.MaxBytesError
			)
			switch {
			case errors.As(err, &he):
				if he.code != http.StatusBadRequest || he.msg == "" {
					t.Fatalf("httpError %+v", he)
				}
			case errors.As(err, &mbe):
				if len(data) <= limit {
					t.Fatalf("MaxBytesError on a %d-byte body", len(data))
				}
			default:
				t.Fatalf("DecodeSpec = %v (%T), want *httpError or *http.MaxBytesError", err, err)
			}
			return
		}
		b, err := json.Marshal(spec)
		if err != nil {
			t.Fatalf("Marshal of a decoded spec: %v", err)
		}
		again, err := DecodeSpec(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("decoded spec does not decode again: %v\n%s", err, b)
		}
		if !reflect.DeepEqual(normNil(again), normNil(spec)) {
			t.Fatalf("round trip changed the spec:\n%+v\n%+v", spec, again)
		}
	})
}

// normNil treats empty and nil slices alike (omitempty drops both).
func normNil(s vm.Spec) vm.Spec {
	if len(s.Disks) == 0 {
		s.Disks = nil
	}
	if len(s.NICs) == 0 {
		s.NICs = nil
	}
	return s
}

// Duplicate keys are refused at every depth, also when they differ only in
// case (encoding/json would set the same field twice), with a 400 naming
// the key's dotted path.
func TestDecodeDuplicateKeys(t *testing.T) {
	tests := []struct {
		desc  string
		body  string
		field string
		msg   string
	}{
		{"top level", `{"name":"a","name":"b"}`, "name", `duplicate key "name"`},
		{"top level, apart", `{"name":"a","vcpus":1,"name":"a"}`, "name", `duplicate key "name"`},
		{"case only", `{"name":"a","Name":"b"}`, "Name", `also given as "name"`},
		{"unicode case", `{"kernel":"/k","name":"a","KERNEL":"/x"}`, "KERNEL", "case-insensitively"},
		{"kelvin sign folds like k", `{"kernel":"/k","name":"a","\u212aernel":"/x"}`, "\u212aernel", "case-insensitively"},
		{"in an array element", `{"name":"a","disks":[{"path":"/d"},{"path":"/d","path":"/e"}]}`, "disks.path", `in "disks[1]"`},
		{"escaped spelling", `{"name":"a","n\u0061me":"b"}`, "name", `duplicate key "name"`},
		{"nested deeper", `{"name":"a","nics":[{"groups":["x"],"mac":"m","mac":"n"}]}`, "nics.mac", `in "nics[0]"`},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			for _, dec := range []struct {
				name string
				fn   func(string) error
			}{
				{"DecodeSpec", func(b string) error { _, err := DecodeSpec(strings.NewReader(b)); return err }},
				{"decodeStrict", func(b string) error { var s vm.Spec; return decodeStrict(strings.NewReader(b), &s) }},
			} {
				err := dec.fn(tc.body)
				var he *httpError
				if !errors.As(err, &he) {
					t.Fatalf("%s = %v (%T), want *httpError", dec.name, err, err)
				}
				if he.code != http.StatusBadRequest || he.field != tc.field || !strings.Contains(he.msg, tc.msg) {
					t.Errorf("%s = %d field %q %q, want 400 field %q containing %q", dec.name, he.code, he.field, he.msg, tc.field, tc.msg)
				}
			}
		})
	}
}

// checkDuplicateKeys on its own: any depth, arrays of objects, scalars and
// the same key in sibling objects.
func TestCheckDuplicateKeys(t *testing.T) {
	tests := []struct {
		body  string
		field string // "" with ok
		ok    bool
	}{
		{`{}`, "", true},
		{`[]`, "", true},
		{`1e400`, "", true},
		{`{"a":{"a":{"a":1}}}`, "", true},
		{`[{"a":1},{"a":2}]`, "", true}, // siblings, not duplicates
		{`{"a":[1,2,{"b":1}],"b":{"a":1}}`, "", true},
		{`{"a":[[[{"x":1,"y":[{"z":1,"z":2}]}]]]}`, "a.y.z", false},
		{`[{"a":1},{"b":1,"b":2}]`, "b", false},
		{`{"a":{},"a":{}}`, "a", false},
		{`{"a":{"b":1},"c":{"b":1,"B":2}}`, "c.B", false},
		{`{"":1,"":2}`, "", false},
	}
	for _, tc := range tests {
		err := checkDuplicateKeys([]byte(tc.body))
		if tc.ok {
			if err != nil {
				t.Errorf("%s: %v, want no error", tc.body, err)
			}
			continue
		}
		var he *httpError
		if !errors.As(err, &he) || he.code != http.StatusBadRequest || he.field != tc.field {
			t.Errorf("%s: %v (%+v), want a 400 naming %q", tc.body, err, he, tc.field)
		}
	}
}

// Nesting past MaxJSONDepth is refused; at the limit it is not.
func TestCheckDuplicateKeysDepth(t *testing.T) {
	at := strings.Repeat("[", MaxJSONDepth) + strings.Repeat("]", MaxJSONDepth)
	if err := checkDuplicateKeys([]byte(at)); err != nil {
		t.Errorf("depth %d: %v", MaxJSONDepth, err)
	}
	over := strings.Repeat(`{"a":`, MaxJSONDepth+1) + "1" + strings.Repeat("}", MaxJSONDepth+1)
	err := checkDuplicateKeys([]byte(over))
	var he *httpError
	if !errors.As(err, &he) || he.code != http.StatusBadRequest || !strings.Contains(he.msg, "nested deeper than") {
		t.Fatalf("depth %d: %v, want a 400 saying it is too deep", MaxJSONDepth+1, err)
	}
	// Through the API: a deep array inside a known field is refused too.
	deep := `{"name":"a","disks":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`
	if _, err := DecodeSpec(strings.NewReader(deep)); err == nil {
		t.Error("DecodeSpec accepted 100 nested arrays")
	}
}

// Every decodeStrict route refuses a duplicate key with a 400 naming it,
// before acting: the network is not created.
func TestDuplicateKeyOverHTTP(t *testing.T) {
	ts := newNetTestServer(t)
	rec := ts.do("POST", "/api/v1/networks", body(`{"name":"n1","subnet":"10.9.0.0/24","name":"n2"}`))
	var e APIError
	json.Unmarshal(rec.Body.Bytes(), &e)
	if rec.Code != http.StatusBadRequest || e.Field != "name" || !strings.Contains(e.Error, "duplicate key") {
		t.Fatalf("network with a duplicate key: %d %s", rec.Code, rec.Body)
	}
	if rec := ts.do("GET", "/api/v1/networks/n2", nil); rec.Code != http.StatusNotFound {
		t.Errorf("the network was created: %d %s", rec.Code, rec.Body)
	}
	rec = ts.do("POST", "/api/v1/vms", body(`{"name":"a","memory_mib":64,"kernel":"`+ts.kernel+`","memory_mib":128}`))
	json.Unmarshal(rec.Body.Bytes(), &e)
	if rec.Code != http.StatusBadRequest || e.Field != "memory_mib" {
		t.Fatalf("VM with a duplicate key: %d %s", rec.Code, rec.Body)
	}
}

// FuzzDuplicateKeys: the detector never panics on any input, refuses only
// with a 400, and agrees with a map-based reference: a valid JSON value is
// refused exactly when some object in it repeats a key (after case
// folding) or it nests deeper than MaxJSONDepth.
func FuzzDuplicateKeys(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"a":1,"a":2}`, `{"a":1,"A":2}`, `[{"a":1},{"a":1}]`, `{"a":{"b":[{"c":1,"c":2}]}}`,
		`{"\u212a":1,"k":2}`, `{"a\ud800":1,"a\udc00":2}`, `[[[[[]]]]]`, `{"a":1e400}`, `"x"`, `{"a":`, `{"a" 1}`,
		strings.Repeat("[", 70) + strings.Repeat("]", 70),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := checkDuplicateKeys(data)
		if err != nil {
			var he *httpError
			if !errors.As(err, &he) || he.code != http.StatusBadRequest || he.msg == "" {
				t.Fatalf("checkDuplicateKeys = %v (%T), want a 400", err, err)
			}
		}
		if !json.Valid(data) {
			return
		}
		dup, depth := refDuplicates(data)
		if want := dup || depth > MaxJSONDepth; (err != nil) != want {
			t.Fatalf("checkDuplicateKeys(%q) = %v; reference: duplicate %v, depth %d", data, err, dup, depth)
		}
	})
}

// refDuplicates is an independent reference for the fuzz target: it
// decodes with json.RawMessage, one level at a time.
func refDuplicates(data []byte) (dup bool, depth int) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' && data[0] != '[' {
		return false, 0
	}
	var children []json.RawMessage
	if data[0] == '[' {
		json.Unmarshal(data, &children)
	} else {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.Token() // {
		seen := map[string]bool{}
		for dec.More() {
			k, _ := dec.Token()
			key := foldRef(k.(string))
			if seen[key] {
				dup = true
			}
			seen[key] = true
			var v json.RawMessage
			dec.Decode(&v)
			children = append(children, v)
		}
	}
	deepest := 0
	for _, c := range children {
		d, cd := refDuplicates(c)
		dup = dup || d
		deepest = max(deepest, cd)
	}
	return dup, deepest + 1
}

// foldRef is encoding/json's key folding, written as the spec says it.
func foldRef(s string) string {
	return strings.Map(func(r rune) rune { return unicode.ToUpper(unicode.ToLower(r)) }, s)
}
