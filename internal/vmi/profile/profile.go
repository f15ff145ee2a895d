package profile

import (
	"encoding/hex"
	"fmt"

	"github.com/bulwark-project/bulwark/internal/vmi/kallsyms"
)

// FormatVersion changes whenever a cached profile would be read differently;
// older cache files are then derived again.
const FormatVersion = 6

// Profile is what the monitor needs to know about one guest kernel build.
// Addresses are link-time: with KASLR the guest's are shifted by a slide the
// monitor determines at run time.
type Profile struct {
	FormatVersion int    `json:"format_version"`
	Release       string `json:"release"` // e.g. "6.1.0-56-cloud-amd64"
	Banner        string `json:"banner"`  // linux_banner, without the final newline
	BuildID       string `json:"build_id"`

	// Symbols holds the addresses of the well-known symbols (see
	// fields.go); every other symbol is in Kallsyms.
	Symbols map[string]uint64 `json:"symbols"`
	// Offsets maps "type.member.path" to a byte offset from the type's
	// start; Sizes maps a type name or a member path to its size in bytes.
	Offsets map[string]uint64 `json:"offsets"`
	Sizes   map[string]uint64 `json:"sizes"`

	// SyscallTable is sys_call_table as stored in the image: link-time
	// handler addresses, indexed by syscall number.
	SyscallTable []uint64 `json:"syscall_table"`

	// JumpSites are the static-key patch sites in kernel text, sorted by
	// address.
	JumpSites []JumpSite `json:"jump_sites,omitempty"`

	// Kallsyms is the kernel's complete symbol table, so any kernel
	// address can be named (Nearest).
	Kallsyms *kallsyms.Table `json:"kallsyms"`
}

// Symbol returns a symbol's link-time address, from Symbols or else from
// the full table.
func (p *Profile) Symbol(name string) (uint64, bool) {
	if a, ok := p.Symbols[name]; ok {
		return a, true
	}
	if p.Kallsyms == nil {
		return 0, false
	}
	a, _, ok := p.Kallsyms.Lookup(name)
	return a, ok
}

// Offset returns the byte offset of a member path such as
// "task_struct.tasks".
func (p *Profile) Offset(path string) (uint64, bool) {
	o, ok := p.Offsets[path]
	return o, ok
}

// Nearest names the symbol containing a link-time address.
func (p *Profile) Nearest(addr uint64) (name string, off uint64, ok bool) {
	if p.Kallsyms == nil {
		return "", 0, false
	}
	return p.Kallsyms.Nearest(addr)
}

// Validate checks a profile read from outside (a cache file) before use.
func (p *Profile) Validate() error {
	if p.FormatVersion != FormatVersion {
		return fmt.Errorf("profile: format version %d, want %d", p.FormatVersion, FormatVersion)
	}
	if err := checkBuildID(p.BuildID); err != nil {
		return err
	}
	if p.Kallsyms == nil || p.Kallsyms.Len() == 0 {
		return fmt.Errorf("profile: no kallsyms table")
	}
	if len(p.SyscallTable) == 0 || len(p.SyscallTable) > maxSyscalls {
		return fmt.Errorf("profile: sys_call_table has %d entries", len(p.SyscallTable))
	}
	for _, list := range []struct {
		m     map[string]uint64
		wants []wanted
		what  string
	}{{p.Symbols, wantedSymbols, "symbol"}, {p.Offsets, wantedOffsets, "offset"}, {p.Sizes, wantedSizes, "size"}} {
		for _, w := range list.wants {
			if w.required && !anyPresent(list.m, w.alts) {
				return fmt.Errorf("profile: missing %s %v", list.what, w.alts)
			}
		}
	}
	return nil
}

func anyPresent(m map[string]uint64, keys []string) bool {
	for _, k := range keys {
		if _, ok := m[k]; ok {
			return true
		}
	}
	return false
}

// checkBuildID accepts what kimage.BuildID produces: lower-case hex of a
// plausible length. It is used in file names, so nothing else may pass.
func checkBuildID(id string) error {
	if len(id) < 8 || len(id) > 128 || len(id)%2 != 0 {
		return fmt.Errorf("profile: build id %q has an implausible length", id)
	}
	if _, err := hex.DecodeString(id); err != nil {
		return fmt.Errorf("profile: build id %q is not hex", id)
	}
	for _, c := range id {
		if c >= 'A' && c <= 'F' {
			return fmt.Errorf("profile: build id %q is not lower-case", id)
		}
	}
	return nil
}
