package policy_test

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/attest"
	"github.com/bulwark-project/bulwark/internal/attest/policy"
	"github.com/bulwark-project/bulwark/internal/measure"
	"github.com/bulwark-project/bulwark/internal/measure/eventlog"
	"github.com/bulwark-project/bulwark/internal/tpm"
	"github.com/bulwark-project/bulwark/internal/vm"
)

func TestParseEventData(t *testing.T) {
	f := func(kv ...string) []policy.Field {
		var out []policy.Field
		for i := 0; i < len(kv); i += 2 {
			out = append(out, policy.Field{Key: kv[i], Value: kv[i+1]})
		}
		return out
	}
	tests := []struct {
		pcr    uint32
		data   string
		kind   string
		fields []policy.Field
	}{
		{11, `bulwark-binary path="/proc/self/exe" size=123`, "bulwark-binary", f("path", "/proc/self/exe", "size", "123")},
		{11, `qemu-binary path="/opt/q \"x\"\\y" size=0`, "qemu-binary", f("path", `/opt/q "x"\y`, "size", "0")},
		{11, `qemu-firmware name=bios-microvm.bin path="/usr/share/qemu/bios-microvm.bin" size=131072`, "qemu-firmware",
			f("name", "bios-microvm.bin", "path", "/usr/share/qemu/bios-microvm.bin", "size", "131072")},
		{11, `seccomp-filter name=vmm size=4096`, "seccomp-filter", f("name", "vmm", "size", "4096")},
		{11, `hardening-config "cgroup_base=b\njail=true\nseccomp=monitor,vmm\n"`, "hardening-config", f("", "cgroup_base=b\njail=true\nseccomp=monitor,vmm\n")},
		{12, `vm-definition vm="web" digest-of=canonical-json`, "vm-definition", f("vm", "web", "digest-of", "canonical-json")},
		// A hostile name cannot smuggle a second vm field: it is one
		// quoted string.
		{12, `vm-definition vm="a\" vm=\"b" digest-of=canonical-json`, "vm-definition", f("vm", `a" vm="b`, "digest-of", "canonical-json")},
		{12, `vm-cmdline vm="web" cmdline="console=ttyS0\nvm=\"evil\""`, "vm-cmdline", f("vm", "web", "cmdline", "console=ttyS0\nvm=\"evil\"")},
		{12, `vm-disk vm="web" index=0 digest-of=identity path="/d/x.img" ro=true`, "vm-disk", f("vm", "web", "index", "0", "digest-of", "identity", "path", "/d/x.img", "ro", "true")},
		{12, `vm-disk vm="web" index=1 digest-of=identity volume="pool/v" ro=false layer0=qcow2,ro=false,dev=1,ino=2,size=3 layer1=raw,ro=true,dev=1,ino=4,size=5`, "vm-disk",
			f("vm", "web", "index", "1", "digest-of", "identity", "volume", "pool/v", "ro", "false", "layer0", "qcow2,ro=false,dev=1,ino=2,size=3", "layer1", "raw,ro=true,dev=1,ino=4,size=5")},
		{12, `vm-disk vm="web" index=1 digest-of=identity volume="" ro=false`, "vm-disk", f("vm", "web", "index", "1", "digest-of", "identity", "volume", "", "ro", "false")},
		{12, `vm-disk-content vm="web" index=0 layer=1 digest-of=content`, "vm-disk-content", f("vm", "web", "index", "0", "layer", "1", "digest-of", "content")},
		{12, `vm-kernel vm="web" size=9 file="/img/vmlinuz"`, "vm-kernel", f("vm", "web", "size", "9", "file", "/img/vmlinuz")},
		{12, `vm-initrd vm="web" size=9 file="/img/\u00e9t\u00e9"`, "vm-initrd", f("vm", "web", "size", "9", "file", "/img/été")},
		{13, `runtime-text-mismatch process=qemu vm="web" pid=42 binary="/usr/bin/qemu" first_offset=0x1a2b count=3`, "runtime-text-mismatch",
			f("process", "qemu", "vm", "web", "pid", "42", "binary", "/usr/bin/qemu", "first_offset", "0x1a2b", "count", "3")},
		{13, `runtime-text-mismatch process=daemon pid=1 binary="/usr/bin/bulwark" first_offset=0x0 count=1`, "runtime-text-mismatch",
			f("process", "daemon", "pid", "1", "binary", "/usr/bin/bulwark", "first_offset", "0x0", "count", "1")},
	}
	for _, tc := range tests {
		info, err := policy.ParseEventData(tc.pcr, []byte(tc.data))
		if err != nil {
			t.Errorf("%s: %v", tc.data, err)
			continue
		}
		if info.Kind != tc.kind || !reflect.DeepEqual(info.Fields, tc.fields) || info.Truncated {
			t.Errorf("%s:\n got %+v\nwant %s %+v", tc.data, info, tc.kind, tc.fields)
		}
	}
}

func TestParseEventDataRefuses(t *testing.T) {
	long := `vm-cmdline vm="web" cmdline="` + strings.Repeat("x", policy.MaxEventData) + `"`
	tests := []struct {
		pcr     uint32
		data    string
		unknown bool // ErrUnknownKind rather than ErrEventSyntax
	}{
		{11, `frobnicator x=1`, true},
		{11, ``, true},
		{12, `bulwark-binary path="/x" size=1`, true}, // wrong PCR
		{11, `vm-kernel vm="a" size=1 file="/k"`, true},
		{11, `bulwark-binary path="/x"`, false},                // missing size
		{11, `bulwark-binary size=1 path="/x"`, false},         // order
		{11, `bulwark-binary path="/x" size=1 extra=2`, false}, // extra field
		{11, `bulwark-binary path="/x" size=1 `, false},        // trailing space
		{11, `bulwark-binary  path="/x" size=1`, false},        // double space
		{11, `bulwark-binary path=/x size=1`, false},           // unquoted path
		{11, `bulwark-binary path="/x" size="1"`, false},       // quoted number
		{11, `bulwark-binary path="/x" size=01`, false},        // leading zero
		{11, `bulwark-binary path="/x" size=-1`, false},        // sign
		{11, `bulwark-binary path="/x" size=99999999999999999999`, false},
		{11, `bulwark-binary path='/x' size=1`, false},           // single quotes
		{11, "bulwark-binary path=`/x` size=1", false},           // raw string
		{11, `bulwark-binary path="/x size=1`, false},            // unterminated
		{11, `bulwark-binary path="/x\q" size=1`, false},         // bad escape
		{11, "bulwark-binary path=\"/x\nsize=1\" size=1", false}, // raw newline
		{11, "bulwark-binary path=\"/x\xff\" size=1", false},     // not UTF-8
		{11, `seccomp-filter name=../etc size=1`, false},         // bad name
		{11, `seccomp-filter name="vmm" size=1`, false},          // quoted name
		{11, `hardening-config`, false},                          // no value
		{11, `hardening-config "a" "b"`, false},                  // two values
		{11, `hardening-config a`, false},                        // unquoted
		{12, `vm-definition vm="web" digest-of=json`, false},     // wrong literal
		{12, `vm-definition vm="web" vm="evil" digest-of=canonical-json`, false},
		{12, `vm-definition vm="a" vm="b"`, false},
		{12, `vm-disk vm="web" index=0 digest-of=identity ro=true`, false},                       // no path
		{12, `vm-disk vm="web" index=0 digest-of=identity path="/x"`, false},                     // no ro
		{12, `vm-disk vm="web" index=0 digest-of=identity path="/x" ro=true layer0=raw`, false},  // layer on a path disk
		{12, `vm-disk vm="web" index=0 digest-of=identity volume="v" ro=true layer1=raw`, false}, // layer out of order
		{12, `vm-disk vm="web" index=0 digest-of=identity volume="v" ro=maybe`, false},
		{13, `runtime-text-mismatch process=qemu pid=1 binary="/q" first_offset=1a count=1`, false},
		{12, long, false},
		{12, `vm-kernel vm="web" size=9 file="/k" ` + strings.Repeat("a=1 ", policy.MaxEventFields), false},
	}
	for _, tc := range tests {
		_, err := policy.ParseEventData(tc.pcr, []byte(tc.data))
		switch {
		case err == nil:
			t.Errorf("accepted %q", tc.data)
		case tc.unknown && !errors.Is(err, policy.ErrUnknownKind):
			t.Errorf("%q: %v, want ErrUnknownKind", tc.data, err)
		case !tc.unknown && !errors.Is(err, policy.ErrEventSyntax):
			t.Errorf("%q: %v, want ErrEventSyntax", tc.data, err)
		}
	}
}

// trim is internal/measure's cut of overlong event data.
func trim(s string) string {
	const max = 900
	if len(s) <= max {
		return s
	}
	for i := max; i > max-4; i-- {
		if s[i]&0xC0 != 0x80 {
			return s[:i] + "..."
		}
	}
	return s[:max-4] + "..."
}

func TestParseEventDataTruncated(t *testing.T) {
	for _, cmdline := range []string{
		strings.Repeat("a", 2000),
		strings.Repeat(`\"`, 600),      // cut inside an escape
		strings.Repeat("é", 700),       // cut inside a rune
		strings.Repeat("a", 873) + "é", // cut near the closing quote
	} {
		data := trim(fmt.Sprintf("vm-cmdline vm=%q cmdline=%q", "a\" vm=\"b", cmdline))
		info, err := policy.ParseEventData(12, []byte(data))
		if err != nil {
			t.Fatalf("%q: %v", data, err)
		}
		if !info.Truncated || info.Get("vm") != `a" vm="b` {
			t.Errorf("%+v", info)
		}
		if _, ok := info.Lookup("cmdline"); ok {
			t.Errorf("the cut cmdline was kept: %+v", info)
		}
	}
	// Only the writer's cut is forgiven: the same damage at another length
	// is an error.
	if _, err := policy.ParseEventData(12, []byte(`vm-cmdline vm="web" cmdline="abc...`)); err == nil {
		t.Error("short unterminated data accepted")
	}
}

// The daemon's own writer (internal/measure, no TPM) produces event data
// this parser reads back to the values it was given, hostile names too.
func TestParseEventDataOfMeasureWriter(t *testing.T) {
	dir := t.TempDir()
	m, err := measure.Open(filepath.Join(dir, "m"), tpm.None, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	err = m.MeasureHost(measure.Host{Exe: file("bulwark", "b"), QEMU: file("qemu \"x\"", "q"),
		Seccomp: map[string][]byte{"monitor": []byte("m"), "vmm": []byte("v")}, Jail: true, CgroupBase: "bulwark"})
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"web", `a" vm="b`, "new\nline", `back\slash`}
	for _, name := range names {
		spec := vm.Spec{Name: name, Kernel: "/k", Cmdline: "console=ttyS0 " + strings.Repeat("x", 1000),
			Disks: []vm.Disk{{Path: "/d/root \"1\".img"}, {Volume: "pool/v"}}}
		l, err := m.BeginLaunch(spec, [][]measure.DiskLayer{nil, {{Format: "qcow2", Dev: 1, Ino: 2, Size: 3}, {Format: "raw", ReadOnly: true, Dev: 1, Ino: 4, Size: 5}}})
		if err != nil {
			t.Fatal(err)
		}
		k, err := os.Open(file("vmlinuz", "kernel"))
		if err != nil {
			t.Fatal(err)
		}
		err = l.Measure("kernel", k)
		k.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	raw, err := m.EventLog()
	if err != nil {
		t.Fatal(err)
	}
	events, err := eventlog.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	var vms []string
	for _, e := range events {
		info, err := policy.ParseEventData(e.PCR, e.Data)
		if err != nil {
			t.Fatalf("%q: %v", e.Data, err)
		}
		if info.Kind == policy.KindVMDefinition {
			vms = append(vms, info.Get("vm"))
		}
		if info.Kind == policy.KindQEMUBinary && info.Get("path") != filepath.Join(dir, "qemu \"x\"") {
			t.Errorf("qemu path %q", info.Get("path"))
		}
		if info.Kind == policy.KindVMCmdline && !info.Truncated {
			t.Errorf("1 KB cmdline not cut: %q", e.Data)
		}
	}
	if !reflect.DeepEqual(vms, names) {
		t.Fatalf("vm names %q, want %q", vms, names)
	}
	// The host events the writer produced make a policy that passes them.
	p, err := policy.FromHostEvents(1, events)
	if err != nil {
		t.Fatal(err)
	}
	if got := strconv.Itoa(len(p.Host.SeccompFilter)); got != "2" {
		t.Fatalf("seccomp filters %s", got)
	}
}

// PCR 13 data as internal/measure writes it parses, hostile VM names too.
func TestParseRuntimeEventOfMeasure(t *testing.T) {
	for _, rc := range []attest.RuntimeCheck{
		{Process: "qemu", VM: "web \"1\"\n", PID: 42, Binary: "/usr/bin/qemu-system-x86_64",
			Mismatches: []attest.TextMismatch{{Object: "/x", Offset: 0x4a10, Length: 2}}},
		{Process: "daemon", PID: 1, Binary: "/usr/bin/bulwark", Mismatches: []attest.TextMismatch{{Offset: 0}}},
	} {
		_, data, ok := measure.RuntimeMismatchEvent(rc)
		if !ok {
			t.Fatal("no event")
		}
		info, err := policy.ParseEventData(13, []byte(data))
		if err != nil {
			t.Fatalf("%q: %v", data, err)
		}
		if info.Get("process") != rc.Process || info.Get("vm") != rc.VM || info.Get("binary") != rc.Binary ||
			info.Get("first_offset") != fmt.Sprintf("%#x", rc.Mismatches[0].Offset) {
			t.Errorf("%q parsed as %+v", data, info)
		}
	}
}
