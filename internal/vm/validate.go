package vm

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Limits on a spec. They bound what one API call can ask of the host; the
// memory ceiling is a sanity bound, admission against host capacity is the
// resource pool's job.
const (
	MaxNameLen    = 63
	MinMemoryMiB  = 32
	MaxMemoryMiB  = 1 << 20 // 1 TiB
	MaxVCPUs      = 64
	MaxCmdlineLen = 2048 // x86 COMMAND_LINE_SIZE
	MaxDisks      = 8
	MaxNICs       = 8
	MaxPathLen    = 1024
	MaxSocketPath = 107 // sun_path is 108 bytes including the NUL
)

// FieldError names the spec field that is wrong so the API and CLI can point at it.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// A DNS label: it becomes a directory name, a hostname and a metric label, so
// nothing that could walk a path ("..", "/") or confuse a shell is allowed.
var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

// ValidateName checks a VM or network name.
func ValidateName(field, name string) error {
	switch {
	case name == "":
		return fieldErr(field, "must not be empty")
	case len(name) > MaxNameLen:
		return fieldErr(field, "longer than %d characters", MaxNameLen)
	case !nameRE.MatchString(name):
		return fieldErr(field, "%q must be lower-case letters, digits and '-', starting and ending with a letter or digit", name)
	}
	return nil
}

// StatFunc reports on a host path; validation takes it as a parameter so that
// it stays testable without touching the file system.
type StatFunc func(path string) (fs.FileInfo, error)

// Normalize fills defaults that are part of the stored definition (so a later
// default change does not alter an existing VM) and generates missing MACs.
func (s *Spec) Normalize() {
	if s.VCPUs == 0 {
		s.VCPUs = 1
	}
	if s.Accel == "" {
		s.Accel = "auto"
	}
	for i := range s.NICs {
		switch hw, err := net.ParseMAC(s.NICs[i].MAC); {
		case s.NICs[i].MAC == "":
			s.NICs[i].MAC = RandomMAC()
		case err == nil && len(hw) == 6:
			// One spelling per address: QEMU parses only the colon (or
			// dash) form, and duplicates must compare equal.
			s.NICs[i].MAC = hw.String()
		default:
			s.NICs[i].MAC = strings.ToLower(s.NICs[i].MAC)
		}
	}
}

// RandomMAC returns a locally administered unicast MAC in QEMU's 52:54:00 prefix.
func RandomMAC() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("52:54:00:%02x:%02x:%02x", b[0], b[1], b[2])
}

// Validate checks every field of a normalized spec and returns the first
// problem as a *FieldError.
func (s *Spec) Validate(stat StatFunc) error {
	if err := ValidateName("name", s.Name); err != nil {
		return err
	}
	if s.VCPUs < 1 || s.VCPUs > MaxVCPUs {
		return fieldErr("vcpus", "%d out of range 1..%d", s.VCPUs, MaxVCPUs)
	}
	if s.MemoryMiB < MinMemoryMiB || s.MemoryMiB > MaxMemoryMiB {
		return fieldErr("memory_mib", "%d out of range %d..%d", s.MemoryMiB, MinMemoryMiB, MaxMemoryMiB)
	}
	switch s.Accel {
	case "auto", "kvm", "tcg":
	default:
		return fieldErr("accel", "%q is not one of auto, kvm, tcg", s.Accel)
	}
	if err := checkFile("kernel", s.Kernel, true, stat); err != nil {
		return err
	}
	if err := checkFile("initrd", s.Initrd, false, stat); err != nil {
		return err
	}
	if err := checkCmdline(s.Cmdline); err != nil {
		return err
	}
	if s.Console != nil {
		if err := s.Console.Validate(); err != nil {
			return err
		}
	}
	if err := s.ValidateResources(); err != nil {
		return err
	}
	if s.MonitorInterval != "" {
		d, err := time.ParseDuration(s.MonitorInterval)
		if err != nil || d < time.Second || d > 24*time.Hour {
			return fieldErr("monitor_interval", "%q is not a duration between 1s and 24h", s.MonitorInterval)
		}
	}
	if len(s.Disks) > MaxDisks {
		return fieldErr("disks", "%d disks, at most %d", len(s.Disks), MaxDisks)
	}
	for i, d := range s.Disks {
		if err := checkDiskSource(i, d, stat); err != nil {
			return err
		}
	}
	return s.validateNICs()
}

func (s *Spec) validateNICs() error {
	if len(s.NICs) > MaxNICs {
		return fieldErr("nics", "%d NICs, at most %d", len(s.NICs), MaxNICs)
	}
	seen := map[string]bool{}
	for i, n := range s.NICs {
		f := fmt.Sprintf("nics[%d]", i)
		hw, err := net.ParseMAC(n.MAC)
		if err != nil || len(hw) != 6 {
			return fieldErr(f+".mac", "%q is not a MAC address", n.MAC)
		}
		if hw[0]&1 != 0 {
			return fieldErr(f+".mac", "%s is a multicast address", n.MAC)
		}
		if seen[hw.String()] {
			return fieldErr(f+".mac", "%s used twice", n.MAC)
		}
		seen[hw.String()] = true
		if err := validateNICNet(f, n); err != nil {
			return err
		}
		if n.Socket != "" {
			// A NIC on an arbitrary host socket would bypass the switch,
			// its firewall and anti-spoofing, and the daemon (root) would
			// connect it: e.g. to the journal's socket.
			return fieldErr(f+".socket", "NICs on host sockets are not supported: put the NIC on a network (network=NAME)")
		}
	}
	return nil
}

func checkCmdline(c string) error {
	if len(c) > MaxCmdlineLen {
		return fieldErr("cmdline", "longer than %d bytes", MaxCmdlineLen)
	}
	for _, r := range c {
		if r < 0x20 || r == 0x7f {
			return fieldErr("cmdline", "contains a control character")
		}
	}
	return nil
}

func checkPath(field, p string) error {
	if !filepath.IsAbs(p) {
		return fieldErr(field, "%q must be an absolute path", p)
	}
	if len(p) > MaxPathLen {
		return fieldErr(field, "longer than %d bytes", MaxPathLen)
	}
	if strings.ContainsAny(p, ",\x00\n") {
		// A comma would split a QEMU option string; refuse rather than escape.
		return fieldErr(field, "%q contains ',' or a control character", p)
	}
	return nil
}

func checkFile(field, p string, required bool, stat StatFunc) error {
	if p == "" {
		if required {
			return fieldErr(field, "is required")
		}
		return nil
	}
	if err := checkPath(field, p); err != nil {
		return err
	}
	fi, err := stat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fieldErr(field, "%s does not exist", p)
		}
		return fieldErr(field, "%s: %v", p, err)
	}
	if !fi.Mode().IsRegular() {
		return fieldErr(field, "%s is not a regular file", p)
	}
	if fi.Size() == 0 {
		return fieldErr(field, "%s is empty", p)
	}
	return nil
}

// checkDiskSource checks that a disk names exactly one of a volume and a
// host path, and that the one it names is well formed.
func checkDiskSource(i int, d Disk, stat StatFunc) error {
	switch {
	case d.Volume != "" && d.Path != "":
		return fieldErr(fmt.Sprintf("disks[%d]", i), "give either volume or path, not both")
	case d.Volume != "":
		return ValidateVolumeRef(fmt.Sprintf("disks[%d].volume", i), d.Volume)
	}
	return checkDisk(fmt.Sprintf("disks[%d].path", i), d.Path, stat)
}

// ValidateVolumeRef checks a volume reference "POOL/NAME": two names
// under the VM-name rules, so nothing in it can walk a path.
func ValidateVolumeRef(field, ref string) error {
	pool, name, ok := strings.Cut(ref, "/")
	if !ok {
		return fieldErr(field, "%q is not POOL/NAME", ref)
	}
	if err := ValidateName(field, pool); err != nil {
		return err
	}
	return ValidateName(field, name)
}

func checkDisk(field, p string, stat StatFunc) error {
	if err := checkPath(field, p); err != nil {
		return err
	}
	fi, err := stat(p)
	if err != nil {
		return fieldErr(field, "%s: %v", p, err)
	}
	if !fi.Mode().IsRegular() && fi.Mode()&fs.ModeDevice == 0 {
		return fieldErr(field, "%s is neither a file nor a block device", p)
	}
	return nil
}

// MaxGroups bounds the security groups of one NIC.
const MaxGroups = 16

func validateNICNet(f string, n NIC) error {
	if n.Network == "" {
		if n.IP != "" || len(n.Groups) > 0 {
			return fieldErr(f+".network", "ip and groups need a network")
		}
		return nil
	}
	if err := ValidateName(f+".network", n.Network); err != nil {
		return err
	}
	if n.Socket != "" {
		return fieldErr(f+".socket", "a NIC on a network gets its socket from the switch")
	}
	if n.IP != "" {
		a, err := netip.ParseAddr(n.IP)
		if err != nil || !a.Is4() {
			return fieldErr(f+".ip", "%q is not an IPv4 address", n.IP)
		}
	}
	if len(n.Groups) > MaxGroups {
		return fieldErr(f+".groups", "%d groups, at most %d", len(n.Groups), MaxGroups)
	}
	seen := map[string]bool{}
	for j, g := range n.Groups {
		if err := ValidateName(fmt.Sprintf("%s.groups[%d]", f, j), g); err != nil {
			return err
		}
		if seen[g] {
			return fieldErr(fmt.Sprintf("%s.groups[%d]", f, j), "%q listed twice", g)
		}
		seen[g] = true
	}
	return nil
}

// MaxConsoleSessions bounds ConsolePolicy.MaxSessions.
const MaxConsoleSessions = 8

// Validate checks a console policy; field names are prefixed "console.".
func (c *ConsolePolicy) Validate() error {
	if c.MaxSessions < 0 || c.MaxSessions > MaxConsoleSessions {
		return fieldErr("console.max_sessions", "%d out of range 1..%d", c.MaxSessions, MaxConsoleSessions)
	}
	switch c.Clipboard {
	case "", "deny", "allow":
	default:
		return fieldErr("console.clipboard", "%q is not one of deny, allow", c.Clipboard)
	}
	for _, d := range []struct{ field, v string }{{"console.idle_timeout", c.IdleTimeout}, {"console.max_duration", c.MaxDuration}} {
		if d.v == "" {
			continue
		}
		v, err := time.ParseDuration(d.v)
		if err != nil || v < time.Second || v > 7*24*time.Hour {
			return fieldErr(d.field, "%q is not a duration between 1s and 168h", d.v)
		}
	}
	if c.InputMaxKeys < 0 || c.InputMaxKeys > 4096 {
		return fieldErr("console.input_max_keys", "%d out of range 1..4096", c.InputMaxKeys)
	}
	if c.InputBurst < 0 || c.InputBurst > 100000 {
		return fieldErr("console.input_burst", "%d out of range 1..100000", c.InputBurst)
	}
	if c.InputRate < 0 || c.InputRate > 100000 || c.InputRate != c.InputRate {
		return fieldErr("console.input_rate", "%v out of range 0..100000", c.InputRate)
	}
	return nil
}

// ValidateResources checks the pool name, the resources and the NIC rate
// limits alone (what a live change of them must pass).
func (s *Spec) ValidateResources() error {
	if s.Pool != "" {
		if err := ValidateName("pool", s.Pool); err != nil {
			return err
		}
	}
	if err := s.Resources.Validate(s.VCPUs, s.MemoryMiB); err != nil {
		return err
	}
	for i := range s.NICs {
		if err := s.NICs[i].Rate.Validate(fmt.Sprintf("nics[%d].rate", i)); err != nil {
			return err
		}
	}
	return nil
}
