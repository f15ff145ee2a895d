package respond

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

const example = `{
  "global": {"syscall_hook": ["record"], "*": ["record"], "kernel_text_modified": ["pause", "dump"]},
  "pools": {"prod": {"syscall_hook": ["isolate", "dump"]}, "tenants": {"*": ["stop"]}},
  "vms": {"web": {"syscall_hook": ["dump", "isolate"]}, "lab": {"*": ["record"]}}
}`

func TestDecide(t *testing.T) {
	p, err := Parse([]byte(example))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		vm    string
		pools []string
		kind  string
		want  []Action
		rule  string
	}{
		// The VM's own rule wins over its pool's and the global one.
		{"web", []string{"prod"}, "syscall_hook", []Action{Isolate, Dump}, "vms.web.syscall_hook"},
		// No VM or pool rule for the kind: the global one.
		{"web", []string{"prod"}, "kernel_text_modified", []Action{Dump, Pause}, "global.kernel_text_modified"},
		{"db", []string{"prod"}, "syscall_hook", []Action{Isolate, Dump}, "pools.prod.syscall_hook"},
		// Nearest pool first; an ancestor's "*" only when nearer ones say nothing.
		{"db", []string{"prod", "tenants"}, "syscall_hook", []Action{Isolate, Dump}, "pools.prod.syscall_hook"},
		{"db", []string{"prod", "tenants"}, "hidden_task", []Action{Stop}, "pools.tenants.*"},
		// A scope's "*" beats a less specific scope's exact kind.
		{"db", []string{"tenants"}, "kernel_text_modified", []Action{Stop}, "pools.tenants.*"},
		// VM exempted by its own "*".
		{"lab", []string{"tenants"}, "kernel_text_modified", []Action{Record}, "vms.lab.*"},
		// Global exact beats global "*".
		{"x", nil, "kernel_text_modified", []Action{Dump, Pause}, "global.kernel_text_modified"},
		{"x", nil, "bpf_tracing_program", []Action{Record}, "global.*"},
		{"x", []string{"unknown-pool"}, "idt_hook", []Action{Record}, "global.*"},
	} {
		d := Decide(p, tc.vm, tc.pools, tc.kind)
		if !reflect.DeepEqual(d.Actions, tc.want) || d.Rule != tc.rule {
			t.Errorf("Decide(%s, %v, %s) = %v %s, want %v %s", tc.vm, tc.pools, tc.kind, d.Actions, d.Rule, tc.want, tc.rule)
		}
	}
	if d := Decide(nil, "web", nil, "syscall_hook"); !reflect.DeepEqual(d.Actions, []Action{Record}) || d.Rule != RuleDefault {
		t.Errorf("nil policy: %+v", d)
	}
	if d := Decide(&Policy{}, "web", nil, "syscall_hook"); d.Rule != RuleDefault {
		t.Errorf("empty policy: %+v", d)
	}
}

func TestMerge(t *testing.T) {
	for _, tc := range []struct {
		in   [][]Action
		want []Action
	}{
		{nil, []Action{Record}},
		{[][]Action{{Record}}, []Action{Record}},
		{[][]Action{{Stop, Dump}, {Record}}, []Action{Dump, Stop}},
		{[][]Action{{Pause}, {Dump, Isolate}, {Pause, Dump}}, []Action{Isolate, Dump, Pause}},
		{[][]Action{{Stop, Pause, Dump, Isolate}}, []Action{Isolate, Dump, Pause, Stop}},
	} {
		if got := Merge(tc.in...); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Merge(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestParseRefusals(t *testing.T) {
	for _, tc := range []struct {
		in, field, msg string
	}{
		{``, "", "end of the document"},
		{`[]`, "", "expected an object"},
		{`{"global":{}} {}`, "", "trailing data"},
		{`{"global":{},"global":{}}`, "global", "duplicate key"},
		{`{"Global":{}}`, "Global", "unknown field"},
		{`{"version":1}`, "version", "unknown field"},
		{`{"global":[]}`, "global", "expected an object of finding kinds"},
		{`{"global":null}`, "global", "got null"},
		{`{"global":{"Syscall_hook":["dump"]}}`, "global.Syscall_hook", "not a finding kind"},
		{`{"global":{"1x":["dump"]}}`, "global.1x", "not a finding kind"},
		{`{"global":{"**":["dump"]}}`, "global.**", "not a finding kind"},
		{`{"global":{"` + strings.Repeat("a", 65) + `":["dump"]}}`, "global." + strings.Repeat("a", 65), "not a finding kind"},
		{`{"global":{"x":["dump"],"x":["stop"]}}`, "global.x", "duplicate key"},
		{`{"global":{"x":[]}}`, "global.x", "no actions"},
		{`{"global":{"x":"dump"}}`, "global.x", "expected a list of actions"},
		{`{"global":{"x":["dump","dump"]}}`, "global.x[1]", "given twice"},
		{`{"global":{"x":["record","dump"]}}`, "global.x[1]", "stands alone"},
		{`{"global":{"x":["dump","record"]}}`, "global.x[1]", "stands alone"},
		{`{"global":{"x":["kill"]}}`, "global.x[0]", "unknown action"},
		{`{"global":{"x":[1]}}`, "global.x[0]", "got a number"},
		{`{"global":{"x":[["dump"]]}}`, "global.x[0]", "got a list"},
		{`{"vms":{"Web":{}}}`, "vms.Web", "not a name"},
		{`{"vms":{"-web":{}}}`, "vms.-web", "not a name"},
		{`{"vms":{"web":{"x":["dump"]},"web":{}}}`, "vms.web", "duplicate key"},
		{`{"pools":{"p":{"x":["dump"`, "pools.p.x", "end of the document"},
		{`{"pools":[]}`, "pools", "expected an object of names"},
		{`{"vms":{"a":{"x":["dump"]}}`, "", "end of the document"},
		{`{"global":{"x":["dump"}}`, "global.x", "malformed JSON"},
	} {
		_, err := Parse([]byte(tc.in))
		var fe *FieldError
		if !errors.As(err, &fe) {
			t.Errorf("Parse(%q): %v, want a FieldError", tc.in, err)
			continue
		}
		if fe.Field != tc.field || !strings.Contains(fe.Msg, tc.msg) {
			t.Errorf("Parse(%q): field %q msg %q, want field %q msg containing %q", tc.in, fe.Field, fe.Msg, tc.field, tc.msg)
		}
	}
}

func TestParseLimits(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"global":{`)
	for i := 0; i <= MaxRules; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"k` + strings.Repeat("x", i%10) + string(rune('a'+i%26)) + string(rune('a'+i/26)) + `":["dump"]`)
	}
	b.WriteString(`}}`)
	_, err := Parse([]byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "more than 64 rules") {
		t.Errorf("65 rules: %v", err)
	}
	if _, err := Parse(make([]byte, MaxPolicyBytes+1)); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("oversized: %v", err)
	}
}

func TestParseRoundTrip(t *testing.T) {
	p, err := Parse([]byte(example))
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	q, err := Parse(b)
	if err != nil {
		t.Fatalf("Parse(Marshal) = %v\n%s", err, b)
	}
	if !reflect.DeepEqual(p, q) {
		t.Fatalf("round trip changed the policy:\n%+v\n%+v", p, q)
	}
	for _, ok := range []string{`{}`, ` {"global":{"*":["stop"]}} `, `{"vms":{"a":{}},"pools":{}}`} {
		if _, err := Parse([]byte(ok)); err != nil {
			t.Errorf("Parse(%s): %v", ok, err)
		}
	}
}

// FuzzParse: any input is refused with a FieldError or accepted as a
// policy that survives a Marshal/Parse round trip unchanged and whose
// decisions only name valid actions.
func FuzzParse(f *testing.F) {
	f.Add([]byte(example))
	f.Add([]byte(`{"global":{"*":["stop"]}}`))
	f.Add([]byte(`{"vms":{"a":{"x":["dump","isolate"]}},"pools":{"b":{"*":["record"]}}}`))
	f.Add([]byte(`{"global":{"x":["dump"],"x":["dump"]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error is not a FieldError: %v", err)
			}
			return
		}
		b, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		q, err := Parse(b)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", b, err)
		}
		if !reflect.DeepEqual(normalize(p), normalize(q)) {
			t.Fatalf("round trip changed %s", b)
		}
		for vm := range p.VMs {
			for kind := range p.VMs[vm] {
				for _, a := range Decide(p, vm, nil, kind).Actions {
					if !a.Valid() {
						t.Fatalf("invalid action %q", a)
					}
				}
			}
		}
	})
}

// normalize maps empty scopes to nil (Marshal omits them).
func normalize(p *Policy) *Policy {
	q := *p
	if len(q.Global) == 0 {
		q.Global = nil
	}
	if len(q.Pools) == 0 {
		q.Pools = nil
	}
	if len(q.VMs) == 0 {
		q.VMs = nil
	}
	return &q
}
