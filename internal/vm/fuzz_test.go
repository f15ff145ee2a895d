package vm

import (
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzStat treats any path under /ok/ as a non-empty regular file and
// /dev/ok* as a block device; nothing else exists.
func fuzzStat(p string) (fs.FileInfo, error) {
	switch {
	case strings.HasPrefix(p, "/ok/"):
		return fakeInfo{name: filepath.Base(p), size: 1}, nil
	case strings.HasPrefix(p, "/dev/ok"):
		return fakeInfo{name: filepath.Base(p), mode: fs.ModeDevice}, nil
	}
	return nil, &fs.PathError{Op: "stat", Path: p, Err: fs.ErrNotExist}
}

// FuzzSpecValidate feeds arbitrary JSON through the API's path (decode,
// Normalize, Validate). It must never panic, every refusal must be a
// *FieldError, and whatever is accepted must satisfy the invariants the
// backend relies on when it builds a QEMU command line.
func FuzzSpecValidate(f *testing.F) {
	seeds := []string{
		`{"name":"web-1","vcpus":2,"memory_mib":512,"kernel":"/ok/vmlinuz"}`,
		`{"name":"a","memory_mib":32,"kernel":"/ok/k","initrd":"/ok/i","cmdline":"console=hvc0 quiet","accel":"kvm"}`,
		`{"name":"d","memory_mib":64,"kernel":"/ok/k","disks":[{"path":"/ok/root.raw"},{"path":"/dev/okvdb","read_only":true}]}`,
		`{"name":"n","memory_mib":64,"kernel":"/ok/k","nics":[{},{"mac":"52:54:00:AA:BB:CC","network":"lan","socket":"/run/sw.sock"}]}`,
		`{"name":"n","memory_mib":64,"kernel":"/ok/k","nics":[{"mac":"52-54-00-aa-bb-cc"},{"mac":"52:54:00:aa:bb:cc"}]}`,
		`{"name":"n","memory_mib":64,"kernel":"/ok/k","nics":[{"socket":"/run/a,remote.type=inet"}]}`,
		`{"name":"../x","memory_mib":64,"kernel":"/ok/k"}`,
		`{"name":"x","memory_mib":64,"kernel":"/ok/k,if=none"}`,
		`{"name":"x","memory_mib":1048577,"kernel":"/ok/k"}`,
		`{"name":"x","vcpus":-1}`,
		`{}`, `null`, `[]`, `""`, `{"nics":[null]}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var s Spec
		if json.Unmarshal(data, &s) != nil {
			return
		}
		s.Normalize()
		err := s.Validate(fuzzStat)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field == "" {
				t.Fatalf("Validate() = %v (%T), want a *FieldError naming a field", err, err)
			}
			return
		}
		checkInvariants(t, &s)
		// Validation is deterministic and Normalize idempotent.
		again := s
		again.NICs = append([]NIC(nil), s.NICs...)
		again.Normalize()
		if err := again.Validate(fuzzStat); err != nil {
			t.Fatalf("re-normalized spec fails: %v", err)
		}
	})
}

func checkInvariants(t *testing.T, s *Spec) {
	t.Helper()
	if len(s.Name) > MaxNameLen || !nameRE.MatchString(s.Name) {
		t.Fatalf("accepted name %q", s.Name)
	}
	if s.VCPUs < 1 || s.VCPUs > MaxVCPUs {
		t.Fatalf("accepted vcpus %d", s.VCPUs)
	}
	if s.MemoryMiB < MinMemoryMiB || s.MemoryMiB > MaxMemoryMiB {
		t.Fatalf("accepted memory_mib %d", s.MemoryMiB)
	}
	if s.Accel != "auto" && s.Accel != "kvm" && s.Accel != "tcg" {
		t.Fatalf("accepted accel %q", s.Accel)
	}
	// Paths end up inside QEMU option strings: absolute, bounded, no comma.
	okPath := func(what, p string) {
		if !filepath.IsAbs(p) || len(p) > MaxPathLen || strings.ContainsAny(p, ",\x00\n") {
			t.Fatalf("accepted %s %q", what, p)
		}
	}
	okPath("kernel", s.Kernel)
	if s.Initrd != "" {
		okPath("initrd", s.Initrd)
	}
	if len(s.Cmdline) > MaxCmdlineLen {
		t.Fatalf("accepted cmdline of %d bytes", len(s.Cmdline))
	}
	for _, r := range s.Cmdline {
		if r < 0x20 || r == 0x7f {
			t.Fatalf("accepted cmdline with control character %q", r)
		}
	}
	if len(s.Disks) > MaxDisks {
		t.Fatalf("accepted %d disks", len(s.Disks))
	}
	for _, d := range s.Disks {
		okPath("disk", d.Path)
	}
	if len(s.NICs) > MaxNICs {
		t.Fatalf("accepted %d NICs", len(s.NICs))
	}
	seen := map[string]bool{}
	for _, n := range s.NICs {
		hw, err := net.ParseMAC(n.MAC)
		if err != nil || len(hw) != 6 || hw[0]&1 != 0 {
			t.Fatalf("accepted MAC %q", n.MAC)
		}
		if n.MAC != hw.String() {
			t.Fatalf("accepted non-canonical MAC %q after Normalize", n.MAC)
		}
		if seen[hw.String()] {
			t.Fatalf("accepted duplicate MAC %q", n.MAC)
		}
		seen[hw.String()] = true
		if n.Network != "" && (len(n.Network) > MaxNameLen || !nameRE.MatchString(n.Network)) {
			t.Fatalf("accepted network %q", n.Network)
		}
		if n.Socket != "" {
			t.Fatalf("accepted a NIC on host socket %q", n.Socket)
		}
	}
}
