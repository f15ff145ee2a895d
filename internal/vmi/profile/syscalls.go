package profile

import (
	"encoding/binary"
	"fmt"

	"github.com/bulwark-project/bulwark/internal/vmi/kallsyms"
	"github.com/bulwark-project/bulwark/internal/vmi/kimage"
)

// maxSyscalls bounds the table; x86-64 has about 460 entries.
const maxSyscalls = 4096

// syscallTable reads sys_call_table as the image holds it: the link-time
// address of each handler, the reference a monitor compares the guest's
// live table against. kallsyms has no sizes, so the table ends at the next
// symbol, or earlier at the first entry that is not a kernel text address
// (every slot, unused ones included, points at a handler such as
// __x64_sys_ni_syscall).
//
// On kernels with x64_sys_call (6.1.85+, 6.9+) syscalls are dispatched by a
// switch in text and the table is no longer read on the syscall path; it
// is still kept, and still a classic hooking target worth checking.
func syscallTable(vmlinux []byte, segs kimage.Segments, syms *kallsyms.Table, table, stext, etext uint64) ([]uint64, error) {
	limit := uint64(maxSyscalls)
	if next, ok := syms.Next(table); ok {
		limit = min(limit, (next.Addr-table)/8)
	}
	var out []uint64
	for i := range limit {
		off, ok := segs.Offset(table+8*i, 8)
		if !ok {
			break
		}
		a := binary.LittleEndian.Uint64(vmlinux[off:])
		if a < stext || a >= etext {
			break
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("profile: sys_call_table at %#x holds no kernel text addresses in the image", table)
	}
	return out, nil
}
