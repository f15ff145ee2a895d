package kallsyms

import (
	"fmt"

	"github.com/bulwark-project/bulwark/internal/vmi/kimage"
)

// FromImage decodes the kallsyms tables of a decompressed kernel (the vmlinux
// ELF that kimage.Extract returns). The tables are searched for in the file
// data; the ELF's program headers then give each table its link-time
// address, and the search is only accepted when the whole set lies inside one
// loadable segment, as .rodata does. No symbol file is consulted.
func FromImage(vmlinux []byte) (*Table, error) {
	segs, err := kimage.LoadSegments(vmlinux)
	if err != nil {
		return nil, fmt.Errorf("kallsyms: %w", err)
	}
	t, err := Parse(vmlinux)
	if err != nil {
		return nil, err
	}
	tt := t.layout.TokenTable
	seg, ok := segs.ContainingOffset(tt.Off)
	if !ok {
		return nil, fmt.Errorf("kallsyms: token table at file offset %#x is outside every loadable segment", tt.Off)
	}
	for _, r := range t.layout.regions() {
		if r.Size == 0 {
			continue
		}
		if r.Off < 0 || !seg.ContainsOffset(r.Off, r.Size) {
			return nil, fmt.Errorf("kallsyms: table at file offset %#x (+%#x) is not in the segment holding the token table", r.Off, r.Size)
		}
		r.VA = seg.VA(r.Off)
	}
	return t, nil
}
