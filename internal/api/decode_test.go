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
