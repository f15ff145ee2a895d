package engine

import (
	"github.com/bulwark-project/bulwark/internal/vmi/guest"
	"github.com/bulwark-project/bulwark/internal/vmi/profile"
)

// LayoutOf adapts a derived profile to what the guest views need.
func LayoutOf(p *profile.Profile) *guest.Layout {
	l := &guest.Layout{BuildID: p.BuildID, Release: p.Release, Symbols: map[string]uint64{},
		Offsets: p.Offsets, Sizes: p.Sizes, Nearest: p.Nearest, ImageSyscalls: p.SyscallTable}
	if p.Kallsyms != nil {
		l.NamesAt = p.Kallsyms.NamesAt
	}
	l.Lookup = p.Symbol
	for _, j := range p.JumpSites {
		l.JumpSites = append(l.JumpSites, guest.JumpSite{Code: j.Code, Target: j.Target, Len: j.Len})
	}
	for k, v := range p.Symbols {
		l.Symbols[k] = v
	}
	// Symbols the views use that the profile keeps only in the full table.
	for _, name := range []string{"init_pid_ns", "page_offset_base", "__start_rodata", "__end_rodata"} {
		if _, ok := l.Symbols[name]; !ok {
			if a, ok := p.Symbol(name); ok {
				l.Symbols[name] = a
			}
		}
	}
	return l
}
