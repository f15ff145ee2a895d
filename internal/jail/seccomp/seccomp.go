// Package seccomp holds Bulwark's seccomp allow lists for jailed processes
// and installs them.
//
// The lists are data: one JSON file per process kind under filters/,
// embedded in the binary. Every group of syscalls carries a comment saying
// why the process needs them, as Firecracker's JSON filters do, so a review
// of what a jailed process may ask of the kernel is a review of that file.
// Each list is the set measured by tracing the real process (the raw
// measurements are in testdata/*-observed.txt and a test keeps the two
// consistent), plus what the Go runtime of the jail stage may call in the
// short window between loading the filter and execve, plus the few paths a
// group's comment names as reasoned rather than measured (KVM for QEMU).
//
// Syscall names and numbers come from go-seccomp-bpf's x86_64 table. The
// BPF program is assembled here (assemble.go), not by go-seccomp-bpf,
// whose v1.6.0 assembler mishandles argument conditions, and a test checks
// it against a reference evaluation of the file in x/net/bpf's
// interpreter. Install loads it with no_new_privs and TSYNC.
//
// A filter file looks like this:
//
//	{
//	  "comment": "what the filter is for",
//	  "default_action": "trap",
//	  "groups": [
//	    {"comment": "why", "syscalls": ["read", "write"]},
//	    {"comment": "threads only, never fork", "syscall": "clone",
//	     "args": [{"index": 0, "op": "bits_set", "value": 65536}]},
//	    {"comment": "why", "syscalls": ["clone3"], "action": "errno:ENOSYS"}
//	  ]
//	}
//
// A group either lists plain syscalls or names one syscall with argument
// conditions, all of which must hold. Argument operators are eq, ne, gt, ge,
// lt, le (unsigned comparisons of the whole 64-bit register, so a negative
// int argument arrives sign-extended), bits_set and bits_not_set (value
// must be a single bit), and in (values: the argument equals one of them). Several
// groups may constrain the same syscall (any of them matching is enough),
// but a syscall allowed without conditions may not also appear with
// conditions, since the plain rule would make the conditions meaningless.
// The action of a group defaults to "allow"; others are "errno:NAME" (NAME
// one of EPERM, EACCES, EINVAL, ENOSYS, EOPNOTSUPP), "trap", "log",
// "kill_thread" and "kill_process". Anything not matched gets the
// default_action.
//
// The filters are for x86_64 only (syscall names are checked against that
// table). The BPF program answers the x32 ABI with ENOSYS, and a syscall
// made through another ABI (int 0x80, the i386 table) gets the default
// action whatever its number.
package seccomp

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"slices"
	"sort"
	"strings"

	libseccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
)

// Names of the embedded filters.
const (
	// VMM is for QEMU, installed by the jail stage right before execve.
	VMM = "vmm"
	// Monitor is for the introspection monitor (`bulwark monitor`).
	Monitor = "monitor"
)

// VMMKVM is the vmm filter with its "only": "kvm" groups (ioctl on the KVM
// descriptors): a VM under TCG makes no ioctl at all, so it does not get
// them.
const VMMKVM = VMM + "+kvm"

// names lists every embedded filter; a test checks filters/ holds exactly
// these.
var names = []string{VMM, Monitor}

// features are the optional group tags ("only") a filter may carry,
// selected with NAME+FEATURE.
var features = map[string][]string{VMM: {"kvm"}}

//go:embed filters/*.json
var filterFS embed.FS

// Linux errno values for errno actions. They are spelled out rather than
// taken from x/sys/unix so that the table is the Linux one on every build
// platform.
var errnos = map[string]uint32{
	"EPERM":      1,
	"EACCES":     13,
	"EINVAL":     22,
	"ENOSYS":     38,
	"EOPNOTSUPP": 95,
}

// Program returns the named filter parsed, validated and assembled into a
// classic BPF program for x86_64 (see assemble.go).
func Program(name string) ([]bpf.Instruction, error) {
	s, err := load(name)
	if err != nil {
		return nil, err
	}
	return s.program()
}

// Syscalls returns the sorted names of the syscalls the named filter
// allows, with or without argument conditions. Syscalls answered with an
// errno are not included.
func Syscalls(name string) ([]string, error) {
	s, err := load(name)
	if err != nil {
		return nil, err
	}
	var out []string
	for n, a := range s.actions() {
		if a == "allow" {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}

func load(name string) (*spec, error) {
	base, feat, plus := strings.Cut(name, "+")
	if !slices.Contains(names, base) || (plus && feat == "") {
		return nil, fmt.Errorf("seccomp filter %q: no such filter (have %s)", name, strings.Join(names, ", "))
	}
	if feat != "" && !slices.Contains(features[base], feat) {
		return nil, fmt.Errorf("seccomp filter %q: %s has no %q groups", name, base, feat)
	}
	data, err := filterFS.ReadFile("filters/" + base + ".json")
	if err != nil {
		return nil, fmt.Errorf("seccomp filter %q: %w", name, err)
	}
	s, err := parse(base, data)
	if err != nil {
		return nil, err
	}
	// Groups tagged with a feature apply only when it is asked for.
	kept := s.Groups[:0]
	for _, g := range s.Groups {
		if g.Only == "" || g.Only == feat {
			kept = append(kept, g)
		}
	}
	s.Groups, s.name = kept, name
	return s, nil
}

// spec is a filter file as written.
type spec struct {
	name          string
	Comment       string  `json:"comment"`
	DefaultAction string  `json:"default_action"`
	Groups        []group `json:"groups"`
}

// group is one commented rule: either plain Syscalls, or one Syscall with
// argument conditions.
type group struct {
	Comment  string   `json:"comment"`
	Syscalls []string `json:"syscalls,omitempty"`
	Syscall  string   `json:"syscall,omitempty"`
	Args     []cond   `json:"args,omitempty"`
	Action   string   `json:"action,omitempty"`
	// Only names the feature the group belongs to ("kvm"): it is part of
	// the filter only as NAME+FEATURE.
	Only string `json:"only,omitempty"`
}

// cond is a condition on one argument (index 0-5) of a syscall.
type cond struct {
	Index  uint32   `json:"index"`
	Op     string   `json:"op"`
	Value  *uint64  `json:"value,omitempty"`
	Values []uint64 `json:"values,omitempty"`
}

// ops are the argument operators besides "in".
var ops = map[string]bool{
	"eq": true, "ne": true, "gt": true, "ge": true, "lt": true, "le": true,
	"bits_set": true, "bits_not_set": true,
}

// parse decodes and validates a filter file. Unknown fields, unknown
// syscall names, duplicate rules and groups without a comment are errors.
func parse(name string, data []byte) (*spec, error) {
	s := &spec{name: name}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(s); err != nil {
		return nil, fmt.Errorf("seccomp filter %q: %w", name, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("seccomp filter %q: data after the filter object", name)
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *spec) errorf(format string, args ...any) error {
	return fmt.Errorf("seccomp filter %q: "+format, append([]any{s.name}, args...)...)
}

func (s *spec) validate() error {
	if strings.TrimSpace(s.Comment) == "" {
		return s.errorf("no comment saying what the filter is for")
	}
	switch s.DefaultAction {
	case "trap", "kill_process", "kill_thread", "log":
	default:
		return s.errorf("default_action %q: want trap, kill_process, kill_thread or log", s.DefaultAction)
	}
	if len(s.Groups) == 0 {
		return s.errorf("no groups")
	}
	plain := map[string]int{}       // syscall -> group allowing it unconditionally
	conditional := map[string]int{} // syscall -> first group constraining its arguments
	for i, g := range s.Groups {
		where := fmt.Sprintf("group %d", i)
		if strings.TrimSpace(g.Comment) == "" {
			return s.errorf("%s: no comment saying why these syscalls are needed", where)
		}
		if _, err := parseAction(g.Action); err != nil {
			return s.errorf("%s: %w", where, err)
		}
		if base, _, _ := strings.Cut(s.name, "+"); g.Only != "" && !slices.Contains(features[base], g.Only) {
			return s.errorf("%s: only %q: not a feature of this filter", where, g.Only)
		}
		switch {
		case len(g.Syscalls) > 0 && (g.Syscall != "" || len(g.Args) > 0):
			return s.errorf("%s: has both \"syscalls\" and \"syscall\"/\"args\"", where)
		case len(g.Syscalls) > 0:
			for _, n := range g.Syscalls {
				if err := checkName(n); err != nil {
					return s.errorf("%s: %w", where, err)
				}
				if j, ok := plain[n]; ok {
					return s.errorf("%s: %s already listed in group %d", where, n, j)
				}
				if j, ok := conditional[n]; ok {
					return s.errorf("%s: %s has argument conditions in group %d, so it cannot also be listed plainly", where, n, j)
				}
				plain[n] = i
			}
		case g.Syscall != "":
			if err := checkName(g.Syscall); err != nil {
				return s.errorf("%s: %w", where, err)
			}
			if len(g.Args) == 0 {
				return s.errorf("%s: %s without \"args\"; list it under \"syscalls\"", where, g.Syscall)
			}
			if j, ok := plain[g.Syscall]; ok {
				return s.errorf("%s: %s is allowed without conditions in group %d, so its conditions would never apply", where, g.Syscall, j)
			}
			if _, ok := conditional[g.Syscall]; !ok {
				conditional[g.Syscall] = i
			}
			if _, err := g.conditions(); err != nil {
				return s.errorf("%s: %s: %w", where, g.Syscall, err)
			}
		default:
			return s.errorf("%s: no syscalls", where)
		}
	}
	return nil
}

func checkName(n string) error {
	if _, ok := arch.X86_64.SyscallNames[n]; !ok {
		return fmt.Errorf("unknown syscall %q for x86_64", n)
	}
	return nil
}

// parseAction turns a group action into a go-seccomp-bpf action. An errno
// action carries its value in the low 16 bits (SECCOMP_RET_DATA).
func parseAction(s string) (libseccomp.Action, error) {
	switch s {
	case "", "allow":
		return libseccomp.ActionAllow, nil
	case "trap":
		return libseccomp.ActionTrap, nil
	case "log":
		return libseccomp.ActionLog, nil
	case "kill_thread":
		return libseccomp.ActionKillThread, nil
	case "kill_process":
		return libseccomp.ActionKillProcess, nil
	}
	if e, ok := strings.CutPrefix(s, "errno:"); ok {
		if v, ok := errnos[e]; ok {
			return libseccomp.ActionErrno | libseccomp.Action(v), nil
		}
		return 0, fmt.Errorf("action %q: unknown errno %q", s, e)
	}
	return 0, fmt.Errorf("unknown action %q", s)
}

// argCheck is one condition on a 64-bit argument.
type argCheck struct {
	index uint32
	op    string // a key of ops
	value uint64
}

// conditions expands the group's argument conditions into alternatives
// (an "in" condition yields one alternative per value); each alternative is
// a set of conditions that must all hold.
func (g *group) conditions() ([][]argCheck, error) {
	alts := [][]argCheck{nil}
	for _, c := range g.Args {
		if c.Index > 5 {
			return nil, fmt.Errorf("argument index %d: want 0-5", c.Index)
		}
		var choices []argCheck
		if c.Op == "in" {
			if c.Value != nil || len(c.Values) == 0 {
				return nil, fmt.Errorf("argument %d: op \"in\" takes \"values\"", c.Index)
			}
			for _, v := range c.Values {
				choices = append(choices, argCheck{index: c.Index, op: "eq", value: v})
			}
		} else {
			if !ops[c.Op] {
				return nil, fmt.Errorf("argument %d: unknown op %q", c.Index, c.Op)
			}
			if c.Value == nil || len(c.Values) > 0 {
				return nil, fmt.Errorf("argument %d: op %q takes one \"value\"", c.Index, c.Op)
			}
			// With one bit, "set" cannot be misread as "any of" or "all of".
			if (c.Op == "bits_set" || c.Op == "bits_not_set") && bits.OnesCount64(*c.Value) != 1 {
				return nil, fmt.Errorf("argument %d: op %q needs a single-bit value, got %#x", c.Index, c.Op, *c.Value)
			}
			choices = []argCheck{{index: c.Index, op: c.Op, value: *c.Value}}
		}
		var next [][]argCheck
		for _, a := range alts {
			for _, ch := range choices {
				next = append(next, append(slices.Clone(a), ch))
			}
		}
		alts = next
	}
	return alts, nil
}

// actions maps each syscall with a rule to its action as written ("allow"
// for the default). Validation guarantees one action per syscall unless
// several conditional groups name it with different actions; the first
// allow wins then, since that is what makes it reachable.
func (s *spec) actions() map[string]string {
	out := map[string]string{}
	for _, g := range s.Groups {
		a := g.Action
		if a == "" {
			a = "allow"
		}
		for _, n := range append(slices.Clone(g.Syscalls), g.Syscall) {
			if n != "" && out[n] != "allow" {
				out[n] = a
			}
		}
	}
	return out
}

// Sources returns the bytes of every embedded filter file, keyed by filter
// name ("vmm", "monitor"): what measured launch hashes into the hypervisor
// layer's PCR.
func Sources() (map[string][]byte, error) {
	out := make(map[string][]byte, len(names))
	for _, n := range names {
		b, err := filterFS.ReadFile("filters/" + n + ".json")
		if err != nil {
			return nil, fmt.Errorf("seccomp: filter %s: %w", n, err)
		}
		out[n] = b
	}
	return out, nil
}
