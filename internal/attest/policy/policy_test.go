package policy_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/attest/policy"
)

func TestParseMarshalRoundTrip(t *testing.T) {
	p := basePolicy(t)
	if p.Version != 3 || len(p.Images) != 2 || p.Host.SeccompFilter["vmm"][0] != hx("vmm-1") {
		t.Fatalf("parsed %+v", p)
	}
	b, err := policy.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	q, err := policy.Parse(b)
	if err != nil {
		t.Fatalf("Parse(Marshal): %v\n%s", err, b)
	}
	b2, err := policy.Marshal(q)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, b2) {
		t.Fatalf("round trip differs:\n%s\n%s", b, b2)
	}
}

func TestParseErrors(t *testing.T) {
	base := basePolicyJSON()
	repl := func(old, new string) string {
		if !strings.Contains(base, old) {
			t.Fatalf("fixture lacks %q", old)
		}
		return strings.Replace(base, old, new, 1)
	}
	many := make([]string, policy.MaxDigests+1)
	for i := range many {
		many[i] = fmt.Sprintf("%q", hx(fmt.Sprint("d", i)))
	}
	tests := []struct {
		name, doc, path, msg string
	}{
		{"unknown field", repl(`"version": 3,`, `"version": 3, "extra": 1,`), "extra", "unknown field"},
		{"unknown nested field", repl(`"qemu-binary":`, `"qemu-binaryy":`), "host.qemu-binaryy", "unknown field"},
		{"field in another case", repl(`"version": 3`, `"Version": 3`), "Version", "unknown field"},
		{"duplicate key", repl(`"version": 3,`, `"version": 3, "version": 4,`), "version", "duplicate key"},
		{"duplicate map key", repl(`"a": {"kernel"`, `"b": {"kernel": "x"}, "a": {"kernel"`), `images["b"]`, "duplicate key"},
		{"null", repl(`"qemu-binary": [`, `"qemu-binary": null, "x": [`), "host.qemu-binary", "must be an array, not null"},
		{"string for number", repl(`"version": 3`, `"version": "3"`), "version", "must be an integer"},
		{"bad hex", repl(`"kernel": "`+hx("kernel-a"), `"kernel": "abc`+hx("kernel-a")), `images["a"].kernel`, `"abc` + hx("kernel-a")[:10]},
		{"bad hex short", repl(`"kernel": "`+hx("kernel-a")+`"`, `"kernel": "abc"`), `images["a"].kernel`, `"abc" is not a 64-hex-digit SHA-256`},
		{"upper-case hex", repl(hx("kernel-a"), strings.ToUpper(hx("kernel-a"))), `images["a"].kernel`, "lower-case"},
		{"unknown image", repl(`"images": ["*"]`, `"images": ["c"]`), "vm_default.images[0]", `"c" is not an image`},
		{"star with others", repl(`"images": ["*"]`, `"images": ["a", "*"]`), "vm_default.images[1]", "only entry"},
		{"empty allow-list", repl(`"bulwark-binary": [`+fmt.Sprintf("%q", hx("bulwark-1"))+`]`, `"bulwark-binary": []`), "host.bulwark-binary", "empty allow-list"},
		{"empty named list", repl(`"vmm": [`+fmt.Sprintf("%q", hx("vmm-1"))+`]`, `"vmm": []`), `host.seccomp-filter["vmm"]`, "empty allow-list"},
		{"repeated digest", repl(`"qemu-binary": [`, `"qemu-binary": [`+fmt.Sprintf("%q", hx("qemu-1"))+`,`), "host.qemu-binary[1]", "listed twice"},
		{"too many digests", repl(`"bulwark-binary": [`+fmt.Sprintf("%q", hx("bulwark-1"))+`]`, `"bulwark-binary": [`+strings.Join(many, ",")+`]`), "host.bulwark-binary", "more than 64"},
		{"version 0", repl(`"version": 3`, `"version": 0`), "version", "at least 1"},
		{"version fraction", repl(`"version": 3`, `"version": 3.5`), "version", "must be an integer"},
		{"version too large", repl(`"version": 3`, `"version": 1e30`), "version", "must be an integer"},
		{"missing host", repl(`"host": {`, `"hostx": {`), "hostx", "unknown field"},
		{"missing kernel", repl(`"a": {"kernel"`, `"a": {"disk"`), `images["a"].kernel`, "missing"},
		{"bad image name", repl(`"a": {`, `"A": {`), `images["A"]`, "not an image name"},
		{"bad vm name", repl(`"vm_default"`, `"vms": {"Web": {"images": ["a"]}}, "vm_default"`), `vms["Web"]`, "not a VM name"},
		{"empty vm rule", repl(`"vm_default"`, `"vms": {"web": {}}, "vm_default"`), `vms["web"]`, "empty rule"},
		{"bad max_age", repl(`"max_age": "10m"`, `"max_age": "ten minutes"`), "introspection.max_age", "not a duration"},
		{"max_age too long", repl(`"max_age": "10m"`, `"max_age": "1000h"`), "introspection.max_age", "between 0"},
		{"bad on_error", repl(`"introspection"`, `"runtime": {"on_error": "ignore"}, "introspection"`), "runtime.on_error", `"ignore"`},
		{"bad ignore kind", repl(`"max_age": "10m"`, `"ignore_kinds": ["Bad Kind"]`), "introspection.ignore_kinds[0]", "not a finding kind"},
		{"trailing data", base + "{}", "", "data after the document"},
		{"truncated", base[:len(base)/2], "", ""},
		{"not an object", `[1]`, "(document)", "must be an object"},
		{"deep nesting", repl(`"version": 3`, `"version": [[[[[[[[1]]]]]]]]`), "version", "must be an integer"},
		{"firmware name", repl(`"bios-microvm.bin"`, `"bios/../x"`), `host.qemu-firmware["bios/../x"]`, "not a component name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := policy.Parse([]byte(tc.doc))
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.doc)
			}
			var pe *policy.Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %T %v is not a *policy.Error", err, err)
			}
			if tc.path != "" && pe.Path != tc.path {
				t.Errorf("path %q, want %q (%v)", pe.Path, tc.path, err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q lacks %q", err, tc.msg)
			}
		})
	}
}

func TestParseTooLarge(t *testing.T) {
	doc := strings.Replace(basePolicyJSON(), `"version": 3`, `"version": 3`+strings.Repeat(" ", policy.MaxDocumentSize), 1)
	if _, err := policy.Parse([]byte(doc)); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("err = %v", err)
	}
}

// A Policy built in Go, not parsed, is validated (and indexed) by Marshal
// and by Evaluate on first use.
func TestValidateHandBuilt(t *testing.T) {
	p := &policy.Policy{Version: 1, Host: policy.HostRules{BulwarkBinary: []string{hx("b")}, QEMUBinary: []string{hx("q")}, HardeningConfig: []string{"nothex"}}}
	if _, err := policy.Marshal(p); err == nil || !strings.Contains(err.Error(), "host.hardening-config[0]") {
		t.Fatalf("err = %v", err)
	}
	p.Host.HardeningConfig = []string{hx("h")}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
}
