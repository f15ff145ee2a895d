package mirror

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/bulwark-project/bulwark/internal/netsw"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// Session is one mirror session: which frames of a network to copy and
// where to.
type Session struct {
	Name    string `json:"name"`
	Network string `json:"network"`
	// Sources are VM names (all the VM's NICs on Network) or port names
	// "VM/nicN"; at least one, at most MaxSources.
	Sources []string `json:"sources"`
	// Direction is "both" (default), "in" (frames delivered to a source)
	// or "out" (frames a source sent).
	Direction string  `json:"direction,omitempty"`
	Filter    *Filter `json:"filter,omitempty"`
	Target    Target  `json:"target"`
	// SnapLen is the bytes kept of each frame: DefaultSnapLen, at least
	// MinSnapLen.
	SnapLen int `json:"snaplen,omitempty"`
}

// Filter narrows a session to some flows; the empty filter (or none)
// copies every frame, ARP included. A filter with any field set copies IP
// packets only, those matching every field set.
type Filter struct {
	// Proto is "tcp", "udp", "icmp" (ICMP or ICMPv6) or "" (any).
	Proto string `json:"proto,omitempty"`
	// Port is a TCP or UDP source or destination port (0: any); with no
	// Proto it matches TCP and UDP.
	Port uint16 `json:"port,omitempty"`
	// Host is an IP address or CIDR prefix matching the packet's source or
	// destination address.
	Host string `json:"host,omitempty"`
}

// Target is where a session's copies go.
type Target struct {
	// Kind is "pcap", "port" or "erspan".
	Kind string `json:"kind"`

	// pcap: files NAME-000001.pcap, ... in the manager's directory, a new
	// file once one reaches MaxBytes, the oldest removed beyond MaxFiles.
	MaxBytes int64 `json:"max_bytes,omitempty"` // DefaultMaxBytes, MinMaxBytes..MaxMaxBytes
	MaxFiles int   `json:"max_files,omitempty"` // DefaultMaxFiles, 1..MaxMaxFiles

	// port: the monitoring VM's NIC "VM/nicN" (a VM name means its nic0)
	// on the session's network. It only receives: what it sends is dropped
	// (reason mirror_port_tx).
	Port string `json:"port,omitempty"`

	// erspan: GRE (IP protocol 47) carrying ERSPAN type II to Remote, an
	// IPv4 address, sent from the host's own stack.
	Remote    string `json:"remote,omitempty"`
	SessionID uint16 `json:"session_id,omitempty"` // 0..MaxSessionID
	// MaxPPS bounds the ERSPAN packets sent per second (DefaultMaxPPS,
	// 1..MaxMaxPPS); copies over it are dropped and counted.
	MaxPPS int `json:"max_pps,omitempty"`
}

// Target kinds.
const (
	TargetPcap   = "pcap"
	TargetPort   = "port"
	TargetERSPAN = "erspan"
)

// Directions.
const (
	DirBoth = "both"
	DirIn   = "in"
	DirOut  = "out"
)

// Defaults and limits of a session.
const (
	MaxSources     = 64
	DefaultSnapLen = 65535
	MinSnapLen     = 64
	MaxSnapLen     = 65535

	DefaultMaxBytes = 64 << 20
	MinMaxBytes     = 64 << 10
	MaxMaxBytes     = 4 << 30
	DefaultMaxFiles = 4
	MaxMaxFiles     = 1000

	MaxSessionID  = 1023 // ERSPAN's session id has 10 bits
	DefaultMaxPPS = 100_000
	MaxMaxPPS     = 10_000_000
)

// nameRE is the session name: it becomes a file name prefix and a metric
// label.
var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// Normalize fills in the defaults. It changes nothing that Validate would
// refuse, so that the error names what the user wrote.
func (s *Session) Normalize() {
	if s.Direction == "" {
		s.Direction = DirBoth
	}
	if s.SnapLen == 0 {
		s.SnapLen = DefaultSnapLen
	}
	if s.Filter != nil && *s.Filter == (Filter{}) {
		s.Filter = nil
	}
	t := &s.Target
	switch t.Kind {
	case TargetPcap:
		if t.MaxBytes == 0 {
			t.MaxBytes = DefaultMaxBytes
		}
		if t.MaxFiles == 0 {
			t.MaxFiles = DefaultMaxFiles
		}
	case TargetPort:
		if t.Port != "" && !strings.Contains(t.Port, "/") {
			t.Port += "/nic0"
		}
	case TargetERSPAN:
		if t.MaxPPS == 0 {
			t.MaxPPS = DefaultMaxPPS
		}
	}
}

func ferr(field, format string, a ...any) error {
	return &netsw.FieldError{Field: field, Msg: fmt.Sprintf(format, a...)}
}

// Validate checks a normalized session; errors are *netsw.FieldError
// naming the field.
func (s *Session) Validate() error {
	if !nameRE.MatchString(s.Name) {
		return ferr("name", "%q must be 1-63 lower-case letters, digits and '-', starting and ending with a letter or digit", s.Name)
	}
	if err := validName("network", s.Network); err != nil {
		return err
	}
	if len(s.Sources) == 0 {
		return ferr("sources", "at least one VM or port (\"VM/nicN\") is needed")
	}
	if len(s.Sources) > MaxSources {
		return ferr("sources", "%d sources, at most %d", len(s.Sources), MaxSources)
	}
	seen := map[string]bool{}
	for i, src := range s.Sources {
		field := fmt.Sprintf("sources[%d]", i)
		if _, _, err := parseSource(field, src); err != nil {
			return err
		}
		if seen[src] {
			return ferr(field, "%q is listed twice", src)
		}
		seen[src] = true
	}
	switch s.Direction {
	case DirBoth, DirIn, DirOut:
	default:
		return ferr("direction", "%q must be both, in or out", s.Direction)
	}
	if s.SnapLen < MinSnapLen || s.SnapLen > MaxSnapLen {
		return ferr("snaplen", "%d out of range %d..%d", s.SnapLen, MinSnapLen, MaxSnapLen)
	}
	if s.Filter != nil {
		if _, err := s.Filter.compile(); err != nil {
			return err
		}
	}
	return s.validateTarget()
}

func (s *Session) validateTarget() error {
	t := &s.Target
	// Fields of another kind are refused rather than ignored: a session
	// that says more than it does is a misunderstanding.
	other := func(fields ...string) error {
		set := map[string]bool{"max_bytes": t.MaxBytes != 0, "max_files": t.MaxFiles != 0, "port": t.Port != "",
			"remote": t.Remote != "", "session_id": t.SessionID != 0, "max_pps": t.MaxPPS != 0}
		for _, f := range fields {
			if set[f] {
				return ferr("target."+f, "not used by target kind %q", t.Kind)
			}
		}
		return nil
	}
	switch t.Kind {
	case TargetPcap:
		if t.MaxBytes < MinMaxBytes || t.MaxBytes > MaxMaxBytes {
			return ferr("target.max_bytes", "%d out of range %d..%d", t.MaxBytes, MinMaxBytes, int64(MaxMaxBytes))
		}
		if t.MaxFiles < 1 || t.MaxFiles > MaxMaxFiles {
			return ferr("target.max_files", "%d out of range 1..%d", t.MaxFiles, MaxMaxFiles)
		}
		return other("port", "remote", "session_id", "max_pps")
	case TargetPort:
		vmName, _, err := parseSource("target.port", t.Port)
		if err != nil {
			return err
		}
		if !strings.Contains(t.Port, "/") {
			return ferr("target.port", "%q must be a port \"VM/nicN\" (Normalize turns a VM name into its nic0)", t.Port)
		}
		for i, src := range s.Sources {
			if src == t.Port || src == vmName {
				return ferr(fmt.Sprintf("sources[%d]", i), "%q is the session's monitor port: a monitor port cannot be a source", src)
			}
		}
		return other("max_bytes", "max_files", "remote", "session_id", "max_pps")
	case TargetERSPAN:
		a, err := netip.ParseAddr(t.Remote)
		if err != nil || !a.Is4() {
			return ferr("target.remote", "%q must be an IPv4 address", t.Remote)
		}
		if a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
			return ferr("target.remote", "%s is not a unicast address", a)
		}
		if t.SessionID > MaxSessionID {
			return ferr("target.session_id", "%d out of range 0..%d", t.SessionID, MaxSessionID)
		}
		if t.MaxPPS < 1 || t.MaxPPS > MaxMaxPPS {
			return ferr("target.max_pps", "%d out of range 1..%d", t.MaxPPS, MaxMaxPPS)
		}
		return other("max_bytes", "max_files", "port")
	case "":
		return ferr("target.kind", "missing: pcap, port or erspan")
	default:
		return ferr("target.kind", "%q must be pcap, port or erspan", t.Kind)
	}
}

// validName checks a VM or network name as the VM spec does, with the
// error as this package's.
func validName(field, name string) error {
	var fe *vm.FieldError
	if err := vm.ValidateName(field, name); errors.As(err, &fe) {
		return ferr(fe.Field, "%s", fe.Msg)
	} else if err != nil {
		return ferr(field, "%v", err)
	}
	return nil
}

// parseSource splits a source into its VM name and NIC number (-1 for a
// whole VM).
func parseSource(field, src string) (vmName string, nic int, err error) {
	vmName, nicPart, isPort := strings.Cut(src, "/")
	if err := validName(field, vmName); err != nil {
		return "", 0, err
	}
	if !isPort {
		return vmName, -1, nil
	}
	n, ok := strings.CutPrefix(nicPart, "nic")
	if !ok || n == "" || len(n) > 1 && n[0] == '0' {
		return "", 0, ferr(field, "%q must be a VM name or a port \"VM/nicN\"", src)
	}
	nic, err = strconv.Atoi(n)
	if err != nil || nic < 0 || nic >= vm.MaxNICs {
		return "", 0, ferr(field, "%q: NIC number must be 0..%d", src, vm.MaxNICs-1)
	}
	return vmName, nic, nil
}
