package kallsyms

import "fmt"

// Region is where one kallsyms array was found.
type Region struct {
	Off  int64  `json:"off"`          // offset in the parsed buffer (the vmlinux file for FromImage)
	Size int64  `json:"size"`         // bytes, without alignment padding
	VA   uint64 `json:"va,omitempty"` // link-time address; set by FromImage only
}

// AddrMode is how symbol addresses are stored.
type AddrMode int

const (
	// ModeAbsolute: kallsyms_addresses, one u64 per symbol
	// (CONFIG_KALLSYMS_BASE_RELATIVE=n).
	ModeAbsolute AddrMode = iota
	// ModeRelative: kallsyms_relative_base + (u32)kallsyms_offsets[i].
	ModeRelative
	// ModeAbsolutePercpu (CONFIG_KALLSYMS_ABSOLUTE_PERCPU, x86-64 SMP):
	// an offset >= 0 is the absolute value itself (per-CPU variables, which
	// live at small offsets), a negative one means relative_base - 1 - offset.
	// This is kernel/kallsyms.c:kallsyms_sym_address in 6.1.
	ModeAbsolutePercpu
)

func (m AddrMode) String() string {
	switch m {
	case ModeAbsolute:
		return "absolute"
	case ModeRelative:
		return "base-relative"
	case ModeAbsolutePercpu:
		return "base-relative, absolute per-cpu"
	}
	return fmt.Sprintf("AddrMode(%d)", int(m))
}

// Layout describes the arrays Parse found, for diagnostics and for code that
// wants to compare the image's tables against guest memory.
type Layout struct {
	NumSyms      int      `json:"num_syms"`
	MarkerSize   int      `json:"marker_size"` // 4 (u32) or 8 (unsigned long)
	Mode         AddrMode `json:"mode"`
	Reordered    bool     `json:"reordered"` // the Linux 6.4+ order (addresses after token_index)
	RelativeBase uint64   `json:"relative_base,omitempty"`

	TokenTable   Region `json:"token_table"`
	TokenIndex   Region `json:"token_index"`
	Markers      Region `json:"markers"`
	Names        Region `json:"names"`
	NumSymsField Region `json:"num_syms_field"`
	Addresses    Region `json:"addresses"` // kallsyms_offsets or kallsyms_addresses
	BaseField    Region `json:"relative_base_field"`
	SeqsOfNames  Region `json:"seqs_of_names"` // Size 0 when the kernel has none
}

func (l *Layout) regions() []*Region {
	return []*Region{&l.TokenTable, &l.TokenIndex, &l.Markers, &l.Names, &l.NumSymsField, &l.Addresses, &l.BaseField, &l.SeqsOfNames}
}
