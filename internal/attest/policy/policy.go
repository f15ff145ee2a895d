package policy

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"
)

// Implementation limits of a policy document. They bound what one document
// can ask of the verifier's memory and of each evaluation.
const (
	// MaxDocumentSize bounds a policy document in bytes.
	MaxDocumentSize = 1 << 20
	// MaxImages bounds the images of a policy; MaxVMRules its vms entries.
	MaxImages  = 10_000
	MaxVMRules = 10_000
	// MaxDigests bounds one allow-list (a component's golden digests, a
	// VM's definitions, command lines or disks).
	MaxDigests = 64
	// MaxNamed bounds the named components of one kind (seccomp filters,
	// firmware files).
	MaxNamed = 64
	// MaxImageRefs bounds the image names one VM rule lists.
	MaxImageRefs = 256
	// MaxKinds bounds introspection.ignore_kinds.
	MaxKinds = 64
	// MaxNameLen bounds a seccomp filter, firmware or finding-kind name.
	// Image and VM names follow the VM name rule (a DNS label, at most 63).
	MaxNameLen = 128
	// MaxAge bounds max_age.
	MaxAge = 7 * 24 * time.Hour
)

// AnyImage in an images list allows every image of the policy.
const AnyImage = "*"

// Runtime error handling (RuntimeRules.OnError).
const (
	// OnErrorUnknown: a runtime check that could not be done leaves the
	// host unknown (the default).
	OnErrorUnknown = "unknown"
	// OnErrorUntrusted: it makes the host untrusted.
	OnErrorUntrusted = "untrusted"
)

// Policy is a policy document. Digests are lower-case hex SHA-256.
//
// Parse, Merge, FromHostEvents and Validate leave a Policy indexed for
// Evaluate. A Policy is read-only once shared: Evaluate may run on it from
// many goroutines at once, while AddImage, AddHostEvents and direct edits
// must not. After AddImage or AddHostEvents, Evaluate re-validates on
// every call until Validate is called; after a direct edit of a field,
// call Validate, or Evaluate keeps using the index of the old content.
type Policy struct {
	// Version is the policy's revision (at least 1); verdicts carry it.
	Version int `json:"version"`
	// Host holds the golden values of the hypervisor layer (PCR 11).
	Host HostRules `json:"host"`
	// Images are named boot images: a kernel, an optional initrd and an
	// optional read-only disk layer that belong together.
	Images map[string]Image `json:"images,omitempty"`
	// VMs are per-VM rules, by VM name.
	VMs map[string]VMRule `json:"vms,omitempty"`
	// VMDefault applies to running VMs without an entry in VMs (or whose
	// entry lists no images). Absent: such VMs are untrusted.
	VMDefault *DefaultRule `json:"vm_default,omitempty"`
	// Introspection says how guest kernel scans are judged.
	Introspection IntrospectionRules `json:"introspection"`
	// Runtime says how the host's re-measurements of code are judged.
	Runtime RuntimeRules `json:"runtime"`

	ix *index // built by Validate; nil after an edit through a method
}

// HostRules are the allowed digests of each PCR 11 component.
type HostRules struct {
	BulwarkBinary []string `json:"bulwark-binary"`
	QEMUBinary    []string `json:"qemu-binary"`
	// QEMUFirmware is keyed by the firmware's name in the event
	// ("bios-microvm.bin"). Firmware is optional: a host that measured
	// none passes; a measured one with no entry here fails.
	QEMUFirmware map[string][]string `json:"qemu-firmware,omitempty"`
	// SeccompFilter is keyed by filter name ("monitor", "vmm"); every
	// filter named here must have been measured.
	SeccompFilter   map[string][]string `json:"seccomp-filter,omitempty"`
	HardeningConfig []string            `json:"hardening-config"`
}

// Image is a boot image's golden values.
type Image struct {
	Kernel string `json:"kernel"`
	// Initrd is empty for an image that boots without one; a launch with
	// an initrd then does not match it.
	Initrd string `json:"initrd,omitempty"`
	// Disk, when set, is the content digest of the image's read-only base
	// layer (a vm-disk-content event); see evaluate_vm.go for the rule.
	Disk string `json:"disk,omitempty"`
}

// VMRule constrains one VM's latest launch. Empty lists are absent checks.
type VMRule struct {
	// Images the VM may boot (names in Images, or "*" for all); empty:
	// VMDefault's.
	Images []string `json:"images,omitempty"`
	// Definition and Cmdline are allowed digests of the vm-definition
	// (canonical JSON of the spec, which includes the VM's name) and
	// vm-cmdline events.
	Definition []string `json:"definition,omitempty"`
	Cmdline    []string `json:"cmdline,omitempty"`
	// Disks are further allowed read-only layer contents (vm-disk-content
	// digests) besides the image's disk.
	Disks []string `json:"disks,omitempty"`
}

// DefaultRule is the rule for VMs the policy does not name.
type DefaultRule struct {
	Images []string `json:"images"`
	Disks  []string `json:"disks,omitempty"`
}

// IntrospectionRules judge the latest guest kernel scan of each VM.
type IntrospectionRules struct {
	// Required: a running VM with no scan, or one older than MaxAge, is
	// unknown. Default false.
	Required bool `json:"required,omitempty"`
	// MaxAge is how old a scan may be when Required (default 10m).
	MaxAge Duration `json:"max_age,omitempty"`
	// IgnoreKinds are finding kinds that do not count. Every other kind
	// fails the VM, so a kind this policy predates fails too; scan_error
	// makes the VM unknown unless ignored here.
	IgnoreKinds []string `json:"ignore_kinds,omitempty"`
}

// RuntimeRules judge the report's runtime re-measurements of the daemon's
// and QEMU's code. A mismatch always makes the host untrusted.
type RuntimeRules struct {
	// Required: the daemon, and the QEMU of every running VM, must have a
	// check no older than MaxAge, else the host is unknown. Default false.
	Required bool     `json:"required,omitempty"`
	MaxAge   Duration `json:"max_age,omitempty"`
	// OnError is OnErrorUnknown (default) or OnErrorUntrusted. Errors are
	// never ignored: an unchecked process is not known to be intact.
	OnError string `json:"on_error,omitempty"`
}

// DefaultMaxAge is max_age when a section leaves it out.
const DefaultMaxAge = 10 * time.Minute

// Duration is a time.Duration written as Go writes durations ("10m").
type Duration time.Duration

// MarshalJSON writes "10m0s" style strings.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("must be a duration string such as \"10m\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration such as \"10m\"", s)
	}
	*d = Duration(v)
	return nil
}

func (d Duration) orDefault() time.Duration {
	if d == 0 {
		return DefaultMaxAge
	}
	return time.Duration(d)
}

// Error is a policy error at a JSON path.
type Error struct {
	Path string // `images["debian-12"].kernel`; "" for the document
	Msg  string
}

func (e *Error) Error() string {
	if e.Path == "" {
		return "policy: " + e.Msg
	}
	return "policy: " + e.Path + ": " + e.Msg
}

func errAt(path, format string, args ...any) error {
	return &Error{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// Parse decodes and validates a policy document strictly: unknown fields,
// duplicate keys, nulls and values of the wrong type are errors, as is
// anything Validate refuses. Errors are *Error, naming the JSON path.
func Parse(b []byte) (*Policy, error) {
	if len(b) > MaxDocumentSize {
		return nil, errAt("", "document of %d bytes exceeds %d", len(b), MaxDocumentSize)
	}
	if err := checkShape(b); err != nil {
		return nil, err
	}
	p := new(Policy)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(p); err != nil {
		// checkShape accepted the structure, so this is a value error
		// (a number out of range, a bad duration).
		return nil, errAt("", "%v", err)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}

// Marshal writes p as indented JSON that Parse reads back to an equal
// policy (map keys sorted, so equal policies give equal bytes).
func Marshal(p *Policy) ([]byte, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return append(b, '\n'), nil
}

// Validate checks p's content and (re)builds the index Evaluate uses.
func (p *Policy) Validate() error {
	if err := p.validate(); err != nil {
		return err
	}
	p.ix = buildIndex(p)
	return nil
}

func (p *Policy) validate() error {
	if p.Version < 1 {
		return errAt("version", "%d: must be at least 1", p.Version)
	}
	if err := p.Host.validate("host"); err != nil {
		return err
	}
	if len(p.Images) > MaxImages {
		return errAt("images", "%d images exceed %d", len(p.Images), MaxImages)
	}
	for _, name := range sortedKeys(p.Images) {
		if err := p.Images[name].validate(mapPath("images", name), name); err != nil {
			return err
		}
	}
	if len(p.VMs) > MaxVMRules {
		return errAt("vms", "%d VMs exceed %d", len(p.VMs), MaxVMRules)
	}
	for _, name := range sortedKeys(p.VMs) {
		at := mapPath("vms", name)
		if !validVMName(name) {
			return errAt(at, "not a VM name (lower-case letters, digits and '-', at most 63)")
		}
		r := p.VMs[name]
		if r.Images != nil {
			if err := p.checkImageRefs(at+".images", r.Images); err != nil {
				return err
			}
		}
		for _, l := range []struct {
			field string
			list  []string
		}{{"definition", r.Definition}, {"cmdline", r.Cmdline}, {"disks", r.Disks}} {
			if l.list != nil {
				if err := checkDigests(at+"."+l.field, l.list); err != nil {
					return err
				}
			}
		}
		if len(r.Images) == 0 && len(r.Definition) == 0 && len(r.Cmdline) == 0 && len(r.Disks) == 0 {
			return errAt(at, "empty rule: it would only fall back to vm_default; remove it")
		}
	}
	if d := p.VMDefault; d != nil {
		if err := p.checkImageRefs("vm_default.images", d.Images); err != nil {
			return err
		}
		if d.Disks != nil {
			if err := checkDigests("vm_default.disks", d.Disks); err != nil {
				return err
			}
		}
	}
	if err := p.Introspection.validate("introspection"); err != nil {
		return err
	}
	return p.Runtime.validate("runtime")
}

func (h *HostRules) validate(at string) error {
	for _, l := range []struct {
		field string
		list  []string
	}{{"bulwark-binary", h.BulwarkBinary}, {"qemu-binary", h.QEMUBinary}, {"hardening-config", h.HardeningConfig}} {
		if err := checkDigests(at+"."+l.field, l.list); err != nil {
			return err
		}
	}
	for _, m := range []struct {
		field string
		named map[string][]string
	}{{"qemu-firmware", h.QEMUFirmware}, {"seccomp-filter", h.SeccompFilter}} {
		if len(m.named) > MaxNamed {
			return errAt(at+"."+m.field, "%d names exceed %d", len(m.named), MaxNamed)
		}
		for _, name := range sortedKeys(m.named) {
			p := mapPath(at+"."+m.field, name)
			if !validComponentName(name) {
				return errAt(p, "not a component name (letters, digits, '.', '_', '-', at most %d)", MaxNameLen)
			}
			if err := checkDigests(p, m.named[name]); err != nil {
				return err
			}
		}
	}
	return nil
}

func (im Image) validate(at, name string) error {
	if !validVMName(name) {
		return errAt(at, "not an image name (lower-case letters, digits and '-', at most 63)")
	}
	if err := checkDigest(at+".kernel", im.Kernel); err != nil {
		return err
	}
	if im.Initrd != "" {
		if err := checkDigest(at+".initrd", im.Initrd); err != nil {
			return err
		}
	}
	if im.Disk != "" {
		return checkDigest(at+".disk", im.Disk)
	}
	return nil
}

func (p *Policy) checkImageRefs(at string, refs []string) error {
	if len(refs) == 0 {
		return errAt(at, "empty list")
	}
	if len(refs) > MaxImageRefs {
		return errAt(at, "%d images exceed %d", len(refs), MaxImageRefs)
	}
	seen := make(map[string]bool, len(refs))
	for i, r := range refs {
		ip := at + "[" + strconv.Itoa(i) + "]"
		switch {
		case seen[r]:
			return errAt(ip, "%q listed twice", r)
		case r == AnyImage && len(refs) > 1:
			return errAt(ip, "%q must be the only entry", AnyImage)
		case r == AnyImage:
		default:
			if _, ok := p.Images[r]; !ok {
				return errAt(ip, "%q is not an image of this policy", r)
			}
		}
		seen[r] = true
	}
	return nil
}

func (r *IntrospectionRules) validate(at string) error {
	if err := checkAge(at+".max_age", r.MaxAge); err != nil {
		return err
	}
	if len(r.IgnoreKinds) > MaxKinds {
		return errAt(at+".ignore_kinds", "%d kinds exceed %d", len(r.IgnoreKinds), MaxKinds)
	}
	seen := map[string]bool{}
	for i, k := range r.IgnoreKinds {
		ip := at + ".ignore_kinds[" + strconv.Itoa(i) + "]"
		if !validKind(k) {
			return errAt(ip, "%q is not a finding kind (lower-case letters, digits and '_')", k)
		}
		if seen[k] {
			return errAt(ip, "%q listed twice", k)
		}
		seen[k] = true
	}
	return nil
}

func (r *RuntimeRules) validate(at string) error {
	if err := checkAge(at+".max_age", r.MaxAge); err != nil {
		return err
	}
	switch r.OnError {
	case "", OnErrorUnknown, OnErrorUntrusted:
		return nil
	}
	return errAt(at+".on_error", "%q: must be %q or %q", r.OnError, OnErrorUnknown, OnErrorUntrusted)
}

func checkAge(at string, d Duration) error {
	if d < 0 || time.Duration(d) > MaxAge {
		return errAt(at, "%s: must be between 0 (default %s) and %s", time.Duration(d), DefaultMaxAge, MaxAge)
	}
	return nil
}

func checkDigests(at string, list []string) error {
	if len(list) == 0 {
		return errAt(at, "empty allow-list (remove the entry, or list at least one digest)")
	}
	if len(list) > MaxDigests {
		return errAt(at, "%d digests exceed %d", len(list), MaxDigests)
	}
	for i, d := range list {
		ip := at + "[" + strconv.Itoa(i) + "]"
		if err := checkDigest(ip, d); err != nil {
			return err
		}
		for _, e := range list[:i] {
			if e == d {
				return errAt(ip, "%s listed twice", d)
			}
		}
	}
	return nil
}

func checkDigest(at, d string) error {
	if _, ok := parseDigest(d); !ok {
		return errAt(at, "%s is not a 64-hex-digit SHA-256 (lower-case)", strconv.Quote(clip(d, 80)))
	}
	return nil
}

// parseDigest decodes 64 lower-case hex digits.
func parseDigest(s string) ([32]byte, bool) {
	var d [32]byte
	if len(s) != 64 {
		return d, false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return d, false
		}
	}
	_, err := hex.Decode(d[:], []byte(s))
	return d, err == nil
}

// validVMName is the VM (and image) name rule of internal/vm and
// internal/imagestore: a DNS label.
func validVMName(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// validComponentName accepts seccomp filter and firmware names: the bare
// token the event data carries.
func validComponentName(s string) bool {
	if len(s) == 0 || len(s) > MaxNameLen || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !nameByte(s[i]) {
			return false
		}
	}
	return true
}

func nameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
}

// validKind accepts introspection finding kinds ("kernel_text_modified").
func validKind(s string) bool {
	if len(s) == 0 || len(s) > MaxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func mapPath(at, key string) string { return at + "[" + strconv.Quote(key) + "]" }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// clip bounds a hostile string for a message: at most n bytes, cut on a
// UTF-8 boundary, "..." appended when cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && i > n-4 && s[i]&0xC0 == 0x80 {
		i--
	}
	return s[:i] + "..."
}
