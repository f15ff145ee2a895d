package vm

import (
	"errors"
	"io/fs"
	"net"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// fakeInfo is the fs.FileInfo of a fake host file.
type fakeInfo struct {
	name string
	size int64
	mode fs.FileMode
}

func (f fakeInfo) Name() string       { return f.name }
func (f fakeInfo) Size() int64        { return f.size }
func (f fakeInfo) Mode() fs.FileMode  { return f.mode }
func (f fakeInfo) ModTime() time.Time { return time.Time{} }
func (f fakeInfo) IsDir() bool        { return f.mode.IsDir() }
func (f fakeInfo) Sys() any           { return nil }

// fakeHost is the file system validation sees in these tests.
var fakeHost = map[string]fakeInfo{
	"/boot/vmlinuz":   {name: "vmlinuz", size: 10 << 20},
	"/boot/initrd":    {name: "initrd", size: 4 << 20},
	"/boot/empty":     {name: "empty", size: 0},
	"/boot":           {name: "boot", mode: fs.ModeDir | 0o755},
	"/img/root.raw":   {name: "root.raw", size: 1 << 30},
	"/img/data.raw":   {name: "data.raw", size: 1 << 30},
	"/dev/vdb":        {name: "vdb", mode: fs.ModeDevice | 0o660},
	"/dev/ttyS9":      {name: "ttyS9", mode: fs.ModeDevice | fs.ModeCharDevice | 0o660},
	"/run/sock":       {name: "sock", mode: fs.ModeSocket | 0o600},
	"/secret/eacces":  {name: "eacces", size: 1},
	"/boot/vmlinuz-b": {name: "vmlinuz-b", size: 1},
}

var errPerm = errors.New("permission denied")

func fakeStat(p string) (fs.FileInfo, error) {
	if p == "/secret/eacces" {
		return nil, &fs.PathError{Op: "stat", Path: p, Err: errPerm}
	}
	fi, ok := fakeHost[p]
	if !ok {
		return nil, &fs.PathError{Op: "stat", Path: p, Err: fs.ErrNotExist}
	}
	return fi, nil
}

func TestValidateName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"", false},
		{"a", true},
		{"0", true},
		{"web-1", true},
		{"a-b-c-9", true},
		{"a--b", true},
		{strings.Repeat("a", MaxNameLen), true},
		{strings.Repeat("a", MaxNameLen+1), false},
		{strings.Repeat("a", 64), false},
		{"Web", false},
		{"WEB", false},
		{"..", false},
		{".", false},
		{"a.b", false},
		{"a/b", false},
		{"/a", false},
		{"-x", false},
		{"x-", false},
		{"-", false},
		{"a_b", false},
		{"a b", false},
		{" a", false},
		{"a\n", false},
		{"a\x00", false},
		{"é", false},
		{"caf\u00e9", false},
		{"\u0430", false}, // Cyrillic a, looks like "a"
		{"a\u200b", false},
		{"$(reboot)", false},
	}
	for _, tc := range tests {
		err := ValidateName("name", tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
			continue
		}
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != "name" {
				t.Errorf("ValidateName(%q) = %#v, want *FieldError for field name", tc.name, err)
			}
		}
	}
}

// goodSpec is a valid, normalized spec that each case below breaks in one place.
func goodSpec() Spec {
	return Spec{
		Name:      "web-1",
		VCPUs:     2,
		MemoryMiB: 512,
		Kernel:    "/boot/vmlinuz",
		Initrd:    "/boot/initrd",
		Cmdline:   "console=ttyS0 root=/dev/vda rw quiet",
		Disks:     []Disk{{Path: "/img/root.raw"}, {Path: "/dev/vdb", ReadOnly: true}},
		NICs:      []NIC{{MAC: "52:54:00:12:34:56", Network: "lan", IP: "10.0.0.2", Groups: []string{"web"}}, {MAC: "52:54:00:12:34:58"}, {MAC: "52:54:00:12:34:57"}},
		Accel:     "auto",
	}
}

func TestSpecValidate(t *testing.T) {
	tests := []struct {
		desc  string
		edit  func(s *Spec)
		field string // "" means valid
	}{
		{"valid", func(s *Spec) {}, ""},
		{"disk on a volume", func(s *Spec) { s.Disks[0] = Disk{Volume: "default/web-root"} }, ""},
		{"console policy", func(s *Spec) {
			s.Console = &ConsolePolicy{MaxSessions: 2, Clipboard: "allow", IdleTimeout: "30m", MaxDuration: "1h", InputMaxKeys: 4, InputBurst: 10, InputRate: 5}
		}, ""},
		{"empty console policy", func(s *Spec) { s.Console = &ConsolePolicy{} }, ""},
		{"console sessions", func(s *Spec) { s.Console = &ConsolePolicy{MaxSessions: MaxConsoleSessions + 1} }, "console.max_sessions"},
		{"console negative sessions", func(s *Spec) { s.Console = &ConsolePolicy{MaxSessions: -1} }, "console.max_sessions"},
		{"console clipboard", func(s *Spec) { s.Console = &ConsolePolicy{Clipboard: "share"} }, "console.clipboard"},
		{"console idle", func(s *Spec) { s.Console = &ConsolePolicy{IdleTimeout: "soon"} }, "console.idle_timeout"},
		{"console idle too short", func(s *Spec) { s.Console = &ConsolePolicy{IdleTimeout: "10ms"} }, "console.idle_timeout"},
		{"console max too long", func(s *Spec) { s.Console = &ConsolePolicy{MaxDuration: "200h"} }, "console.max_duration"},
		{"console keys", func(s *Spec) { s.Console = &ConsolePolicy{InputMaxKeys: 5000} }, "console.input_max_keys"},
		{"console burst", func(s *Spec) { s.Console = &ConsolePolicy{InputBurst: -1} }, "console.input_burst"},
		{"console rate", func(s *Spec) { s.Console = &ConsolePolicy{InputRate: 1e9} }, "console.input_rate"},
		{"monitor interval", func(s *Spec) { s.MonitorInterval = "30s" }, ""},
		{"monitor interval garbage", func(s *Spec) { s.MonitorInterval = "often" }, "monitor_interval"},
		{"monitor interval too short", func(s *Spec) { s.MonitorInterval = "100ms" }, "monitor_interval"},
		{"minimal", func(s *Spec) {
			*s = Spec{Name: "a", VCPUs: 1, MemoryMiB: MinMemoryMiB, Kernel: "/boot/vmlinuz", Accel: "tcg"}
		}, ""},
		{"max everything", func(s *Spec) {
			s.VCPUs, s.MemoryMiB, s.Cmdline = MaxVCPUs, MaxMemoryMiB, strings.Repeat("x", MaxCmdlineLen)
			s.Disks = make([]Disk, MaxDisks)
			for i := range s.Disks {
				s.Disks[i].Path = "/img/data.raw"
			}
			s.NICs = make([]NIC, MaxNICs)
			for i := range s.NICs {
				s.NICs[i].MAC = "52:54:00:00:00:0" + string(rune('0'+i))
			}
		}, ""},

		{"bad name", func(s *Spec) { s.Name = "Web" }, "name"},
		{"empty name", func(s *Spec) { s.Name = "" }, "name"},
		{"traversal name", func(s *Spec) { s.Name = "../etc" }, "name"},

		{"zero vcpus", func(s *Spec) { s.VCPUs = 0 }, "vcpus"},
		{"negative vcpus", func(s *Spec) { s.VCPUs = -1 }, "vcpus"},
		{"too many vcpus", func(s *Spec) { s.VCPUs = MaxVCPUs + 1 }, "vcpus"},

		{"zero memory", func(s *Spec) { s.MemoryMiB = 0 }, "memory_mib"},
		{"negative memory", func(s *Spec) { s.MemoryMiB = -512 }, "memory_mib"},
		{"memory below floor", func(s *Spec) { s.MemoryMiB = MinMemoryMiB - 1 }, "memory_mib"},
		{"absurd memory", func(s *Spec) { s.MemoryMiB = MaxMemoryMiB + 1 }, "memory_mib"},
		{"huge memory", func(s *Spec) { s.MemoryMiB = 1 << 62 }, "memory_mib"},

		{"empty accel", func(s *Spec) { s.Accel = "" }, "accel"},
		{"bogus accel", func(s *Spec) { s.Accel = "hvf" }, "accel"},
		{"upper-case accel", func(s *Spec) { s.Accel = "KVM" }, "accel"},
		{"accel kvm", func(s *Spec) { s.Accel = "kvm" }, ""},

		{"no kernel", func(s *Spec) { s.Kernel = "" }, "kernel"},
		{"missing kernel", func(s *Spec) { s.Kernel = "/boot/nope" }, "kernel"},
		{"relative kernel", func(s *Spec) { s.Kernel = "boot/vmlinuz" }, "kernel"},
		{"dot-relative kernel", func(s *Spec) { s.Kernel = "./vmlinuz" }, "kernel"},
		{"kernel with comma", func(s *Spec) { s.Kernel = "/boot/vmlinuz,readonly=off" }, "kernel"},
		{"kernel with newline", func(s *Spec) { s.Kernel = "/boot/vm\nlinuz" }, "kernel"},
		{"kernel with NUL", func(s *Spec) { s.Kernel = "/boot/vmlinuz\x00" }, "kernel"},
		{"kernel path too long", func(s *Spec) { s.Kernel = "/" + strings.Repeat("k", MaxPathLen) }, "kernel"},
		{"kernel is a directory", func(s *Spec) { s.Kernel = "/boot" }, "kernel"},
		{"kernel is a device", func(s *Spec) { s.Kernel = "/dev/vdb" }, "kernel"},
		{"kernel is empty", func(s *Spec) { s.Kernel = "/boot/empty" }, "kernel"},
		{"kernel unreadable", func(s *Spec) { s.Kernel = "/secret/eacces" }, "kernel"},

		{"no initrd", func(s *Spec) { s.Initrd = "" }, ""},
		{"missing initrd", func(s *Spec) { s.Initrd = "/boot/nope" }, "initrd"},
		{"relative initrd", func(s *Spec) { s.Initrd = "initrd" }, "initrd"},
		{"initrd with comma", func(s *Spec) { s.Initrd = "/boot/a,b" }, "initrd"},
		{"initrd is a socket", func(s *Spec) { s.Initrd = "/run/sock" }, "initrd"},

		{"cmdline too long", func(s *Spec) { s.Cmdline = strings.Repeat("x", MaxCmdlineLen+1) }, "cmdline"},
		{"cmdline newline", func(s *Spec) { s.Cmdline = "quiet\ninit=/bin/sh" }, "cmdline"},
		{"cmdline tab", func(s *Spec) { s.Cmdline = "quiet\tro" }, "cmdline"},
		{"cmdline NUL", func(s *Spec) { s.Cmdline = "quiet\x00" }, "cmdline"},
		{"cmdline escape", func(s *Spec) { s.Cmdline = "\x1b[2J" }, "cmdline"},
		{"cmdline DEL", func(s *Spec) { s.Cmdline = "a\x7f" }, "cmdline"},
		{"cmdline with commas is fine", func(s *Spec) { s.Cmdline = "a=1,2,3" }, ""},
		{"empty cmdline", func(s *Spec) { s.Cmdline = "" }, ""},

		{"too many disks", func(s *Spec) { s.Disks = make([]Disk, MaxDisks+1) }, "disks"},
		{"relative disk", func(s *Spec) { s.Disks[1].Path = "disk.raw" }, "disks[1].path"},
		{"empty disk path", func(s *Spec) { s.Disks[0].Path = "" }, "disks[0].path"},
		{"missing disk", func(s *Spec) { s.Disks[1].Path = "/img/nope.raw" }, "disks[1].path"},
		{"disk with comma", func(s *Spec) { s.Disks[0].Path = "/img/root.raw,file.locking=off" }, "disks[0].path"},
		{"disk is a directory", func(s *Spec) { s.Disks[0].Path = "/boot" }, "disks[0].path"},
		{"disk with volume and path", func(s *Spec) { s.Disks[0].Volume = "default/web" }, "disks[0]"},
		{"volume without pool", func(s *Spec) { s.Disks[0] = Disk{Volume: "web"} }, "disks[0].volume"},
		{"volume with path characters", func(s *Spec) { s.Disks[0] = Disk{Volume: "default/../etc"} }, "disks[0].volume"},
		{"volume too deep", func(s *Spec) { s.Disks[0] = Disk{Volume: "default/a/b"} }, "disks[0].volume"},
		{"volume upper case", func(s *Spec) { s.Disks[0] = Disk{Volume: "Default/web"} }, "disks[0].volume"},
		{"disk is a socket", func(s *Spec) { s.Disks[0].Path = "/run/sock" }, "disks[0].path"},
		{"disk is a char device", func(s *Spec) { s.Disks[0].Path = "/dev/ttyS9" }, ""},
		{"disk path too long", func(s *Spec) { s.Disks[0].Path = "/" + strings.Repeat("d", MaxPathLen) }, "disks[0].path"},

		{"too many NICs", func(s *Spec) {
			s.NICs = make([]NIC, MaxNICs+1)
			for i := range s.NICs {
				s.NICs[i].MAC = RandomMAC()
			}
		}, "nics"},
		{"invalid MAC", func(s *Spec) { s.NICs[1].MAC = "52:54:00:12:34" }, "nics[1].mac"},
		{"garbage MAC", func(s *Spec) { s.NICs[0].MAC = "not-a-mac" }, "nics[0].mac"},
		{"empty MAC", func(s *Spec) { s.NICs[1].MAC = "" }, "nics[1].mac"},
		{"EUI-64 MAC", func(s *Spec) { s.NICs[1].MAC = "02:00:5e:10:00:00:00:01" }, "nics[1].mac"},
		{"multicast MAC", func(s *Spec) { s.NICs[1].MAC = "01:00:5e:00:00:01" }, "nics[1].mac"},
		{"broadcast MAC", func(s *Spec) { s.NICs[0].MAC = "ff:ff:ff:ff:ff:ff" }, "nics[0].mac"},
		{"duplicate MAC", func(s *Spec) { s.NICs[1].MAC = s.NICs[0].MAC }, "nics[1].mac"},
		{"duplicate MAC in another notation", func(s *Spec) { s.NICs[1].MAC = "52-54-00-12-34-56" }, "nics[1].mac"},
		{"bad network name", func(s *Spec) { s.NICs[0].Network = "LAN" }, "nics[0].network"},
		{"relative socket", func(s *Spec) { s.NICs[1].Socket = "sw0.sock" }, "nics[1].socket"},
		{"unclean socket", func(s *Spec) { s.NICs[1].Socket = "/run/../etc/sock" }, "nics[1].socket"},
		{"socket path too long", func(s *Spec) { s.NICs[1].Socket = "/" + strings.Repeat("s", MaxSocketPath) }, "nics[1].socket"},
		{"any host socket", func(s *Spec) { s.NICs[1].Socket = "/run/bulwark/sw0.sock" }, "nics[1].socket"},
		// A comma would split QEMU's -netdev option string and let the
		// operator inject netdev options.
		{"socket with comma", func(s *Spec) { s.NICs[0].Socket = "/run/a.sock,remote.type=inet" }, "nics[0].socket"},
		{"socket with newline", func(s *Spec) { s.NICs[0].Socket = "/run/a\n.sock" }, "nics[0].socket"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			s := goodSpec()
			tc.edit(&s)
			err := s.Validate(fakeStat)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate() = %v (%T), want *FieldError for %q", err, err, tc.field)
			}
			if fe.Field != tc.field {
				t.Fatalf("Validate() field = %q (%v), want %q", fe.Field, err, tc.field)
			}
			if !strings.HasPrefix(fe.Error(), tc.field+": ") || fe.Msg == "" {
				t.Errorf("Error() = %q, want %q prefix and a message", fe.Error(), tc.field+": ")
			}
		})
	}
}

// The stat function is consulted only for the files the spec names.
func TestSpecValidateStatsOnlySpecPaths(t *testing.T) {
	s := goodSpec()
	var seen []string
	err := s.Validate(func(p string) (fs.FileInfo, error) {
		seen = append(seen, p)
		return fakeStat(p)
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/boot/vmlinuz", "/boot/initrd", "/img/root.raw", "/dev/vdb"}
	if strings.Join(seen, " ") != strings.Join(want, " ") {
		t.Errorf("stat calls = %q, want %q", seen, want)
	}
}

// Validation of the name, range checks and paths happens before any stat, so
// a hostile name never reaches the file system.
func TestSpecValidateNoStatOnBadName(t *testing.T) {
	s := goodSpec()
	s.Name = "../../x"
	err := s.Validate(func(p string) (fs.FileInfo, error) {
		t.Fatalf("stat(%q) called", p)
		return nil, nil
	})
	if err == nil {
		t.Fatal("want error")
	}
}

var macRE = regexp.MustCompile(`^52:54:00:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}$`)

func TestRandomMAC(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		m := RandomMAC()
		if !macRE.MatchString(m) {
			t.Fatalf("RandomMAC() = %q, want 52:54:00:xx:xx:xx", m)
		}
		hw, err := net.ParseMAC(m)
		if err != nil || hw[0]&1 != 0 {
			t.Fatalf("RandomMAC() = %q: not a unicast MAC (%v)", m, err)
		}
		seen[m] = true
	}
	if len(seen) < 150 { // 2^24 values: 200 draws collide rarely
		t.Errorf("only %d distinct MACs in 200 draws", len(seen))
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		desc string
		in   Spec
		want Spec // NICs with MAC "*" must get a random MAC
	}{
		{"defaults", Spec{Name: "a"}, Spec{Name: "a", VCPUs: 1, Accel: "auto"}},
		{"explicit values kept", Spec{VCPUs: 4, Accel: "tcg", MemoryMiB: 64}, Spec{VCPUs: 4, Accel: "tcg", MemoryMiB: 64}},
		{"negative vcpus left for Validate", Spec{VCPUs: -1}, Spec{VCPUs: -1, Accel: "auto"}},
		{"bogus accel left for Validate", Spec{Accel: "bogus"}, Spec{VCPUs: 1, Accel: "bogus"}},
		{"memory not defaulted", Spec{}, Spec{VCPUs: 1, Accel: "auto"}},
		{"MAC generated", Spec{NICs: []NIC{{}, {Network: "lan"}}},
			Spec{VCPUs: 1, Accel: "auto", NICs: []NIC{{MAC: "*"}, {MAC: "*", Network: "lan"}}}},
		{"MAC lower-cased", Spec{NICs: []NIC{{MAC: "52:54:00:AB:CD:EF"}}},
			Spec{VCPUs: 1, Accel: "auto", NICs: []NIC{{MAC: "52:54:00:ab:cd:ef"}}}},
		{"MAC canonical colon form", Spec{NICs: []NIC{{MAC: "52-54-00-AB-CD-EF"}, {MAC: "5254.00ab.cd01"}}},
			Spec{VCPUs: 1, Accel: "auto", NICs: []NIC{{MAC: "52:54:00:ab:cd:ef"}, {MAC: "52:54:00:ab:cd:01"}}}},
		{"invalid MAC left for Validate", Spec{NICs: []NIC{{MAC: "XYZ"}}},
			Spec{VCPUs: 1, Accel: "auto", NICs: []NIC{{MAC: "xyz"}}}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			got := tc.in
			got.NICs = append([]NIC(nil), tc.in.NICs...)
			got.Normalize()
			if len(got.NICs) != len(tc.want.NICs) {
				t.Fatalf("NICs = %v, want %v", got.NICs, tc.want.NICs)
			}
			for i, n := range tc.want.NICs {
				g := got.NICs[i]
				if n.MAC == "*" {
					if !macRE.MatchString(g.MAC) {
						t.Errorf("nics[%d].mac = %q, want a generated 52:54:00 MAC", i, g.MAC)
					}
				} else if g.MAC != n.MAC {
					t.Errorf("nics[%d].mac = %q, want %q", i, g.MAC, n.MAC)
				}
				if g.Network != n.Network || g.Socket != n.Socket {
					t.Errorf("nics[%d] = %+v, want %+v", i, g, n)
				}
			}
			got.NICs, tc.want.NICs = nil, nil
			if got.Name != tc.want.Name || got.VCPUs != tc.want.VCPUs || got.MemoryMiB != tc.want.MemoryMiB ||
				got.Accel != tc.want.Accel || got.Kernel != tc.want.Kernel {
				t.Errorf("Normalize() = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// Normalize is idempotent: a stored spec normalized again is unchanged.
func TestNormalizeIdempotent(t *testing.T) {
	s := Spec{Name: "a", NICs: []NIC{{}, {MAC: "52:54:00:AA:BB:CC"}}}
	s.Normalize()
	first := s
	first.NICs = append([]NIC(nil), s.NICs...)
	s.Normalize()
	for i := range s.NICs {
		if !reflect.DeepEqual(s.NICs[i], first.NICs[i]) {
			t.Errorf("nics[%d] changed on second Normalize: %+v -> %+v", i, first.NICs[i], s.NICs[i])
		}
	}
	if s.VCPUs != first.VCPUs || s.Accel != first.Accel {
		t.Errorf("second Normalize changed %+v to %+v", first, s)
	}
}

// A normalized spec with generated MACs passes validation.
func TestNormalizedSpecValidates(t *testing.T) {
	s := Spec{Name: "db", MemoryMiB: 256, Kernel: "/boot/vmlinuz", NICs: make([]NIC, MaxNICs)}
	s.Normalize()
	if err := s.Validate(fakeStat); err != nil {
		// Eight random MACs from 2^24 collide with negligible probability.
		t.Fatal(err)
	}
}
