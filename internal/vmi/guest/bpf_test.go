package guest

import (
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/vmi/kimage"
	"github.com/bulwark-project/bulwark/internal/vmi/kimage/kimagetest"
	"github.com/cilium/ebpf/btf"
)

// TestBPFEnumsMatchKernel checks the UAPI enum names and the trace event
// flag this package hard-codes against the Debian guest kernel's BTF.
func TestBPFEnumsMatchKernel(t *testing.T) {
	_, vmlinux := kimagetest.Vmlinux(t)
	spec, err := kimage.BTF(vmlinux)
	if err != nil {
		t.Fatal(err)
	}
	enum := func(name string) map[string]uint64 {
		var e *btf.Enum
		if err := spec.TypeByName(name, &e); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		m := map[string]uint64{}
		for _, v := range e.Values {
			m[v.Name] = v.Value
		}
		return m
	}
	for _, c := range []struct {
		enum, prefix string
		names        []string
	}{{"bpf_prog_type", "BPF_PROG_TYPE_", bpfProgTypes}, {"bpf_link_type", "BPF_LINK_TYPE_", bpfLinkTypes}} {
		vals := enum(c.enum)
		matched := 0
		for i, n := range c.names {
			if v, ok := vals[c.prefix+strings.ToUpper(n)]; ok {
				matched++
				if v != uint64(i) {
					t.Errorf("%s%s = %d in the kernel, %d here", c.prefix, strings.ToUpper(n), v, i)
				}
			}
		}
		if matched < 10 {
			t.Errorf("%s: only %d names matched", c.enum, matched)
		}
	}
	var flags *btf.Enum
	found := false
	for typ, err := range spec.All() {
		if err != nil {
			t.Fatal(err)
		}
		if e, ok := typ.(*btf.Enum); ok {
			for _, v := range e.Values {
				if v.Name == "TRACE_EVENT_FL_TRACEPOINT" {
					flags, found = e, true
					if v.Value != TraceEventFlTracepoint {
						t.Errorf("TRACE_EVENT_FL_TRACEPOINT = %#x, want %#x", v.Value, TraceEventFlTracepoint)
					}
				}
			}
		}
		if found {
			break
		}
	}
	if flags == nil {
		t.Error("TRACE_EVENT_FL_TRACEPOINT not in the kernel's BTF")
	}
}
