package policy_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/attest"
	"github.com/bulwark-project/bulwark/internal/attest/policy"
	"github.com/bulwark-project/bulwark/internal/measure/eventlog"
)

// FuzzParse: Parse never panics, and what it accepts Marshal writes back
// to bytes that Parse accepts and Marshal reproduces.
func FuzzParse(f *testing.F) {
	f.Add([]byte(basePolicyJSON()))
	f.Add([]byte(`{"version":1,"host":{"bulwark-binary":["` + hx("b") + `"],"qemu-binary":["` + hx("q") + `"],"hardening-config":["` + hx("h") + `"]}}`))
	f.Add([]byte(`{"version":1,"version":2}`))
	f.Add([]byte(`{"images":{"a":{"kernel":null}}}`))
	f.Add([]byte(`[[[[[[[[[[[[[[[[`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := policy.Parse(b)
		if err != nil {
			return
		}
		out, err := policy.Marshal(p)
		if err != nil {
			t.Fatalf("Marshal of a parsed policy: %v", err)
		}
		q, err := policy.Parse(out)
		if err != nil {
			t.Fatalf("Parse(Marshal): %v\n%s", err, out)
		}
		out2, err := policy.Marshal(q)
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("round trip differs (%v):\n%s\n%s", err, out, out2)
		}
	})
}

// FuzzParseEventData: the parser never panics, keeps its bounds, and
// Evaluate judges any event data without panicking, with a status and a
// bounded list of reasons.
func FuzzParseEventData(f *testing.F) {
	for _, e := range join(hostEvents(), launch("web", "kernel-a", "initrd-a"), []eventlog.Event{contentEv("web", 0, 1, "d")}) {
		f.Add(uint8(e.PCR), e.Data)
	}
	f.Add(uint8(13), []byte(`runtime-text-mismatch process=qemu vm="web" pid=77 binary="/usr/bin/qemu" first_offset=0x1a2b count=2`))
	f.Add(uint8(12), []byte(`vm-definition vm="a\" vm=\"b" digest-of=canonical-json`))
	f.Add(uint8(12), []byte(trim(`vm-cmdline vm="web" cmdline="`+string(bytes.Repeat([]byte(`\"`), 600))+`"`)))
	pol, err := policy.Parse([]byte(basePolicyJSON()))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, pcr uint8, data []byte) {
		info, err := policy.ParseEventData(uint32(pcr), data)
		if err == nil && (info.Kind == "" || len(info.Fields) > policy.MaxEventFields || len(data) > policy.MaxEventData) {
			t.Fatalf("accepted %q as %+v", data, info)
		}
		evs := join(hostEvents(), launch("web", "kernel-a", "initrd-a"))
		evs = append(evs, eventlog.Event{PCR: uint32(pcr % 16), Type: eventlog.EventIPL, Data: data})
		v := policy.Evaluate(pol, evs, running("web"), time.Unix(0, 0))
		if v.Status != attest.Trusted && v.Status != attest.Untrusted && v.Status != attest.Unknown || len(v.Reasons) > policy.MaxReasons+1 {
			t.Fatalf("verdict %+v", v)
		}
	})
}
