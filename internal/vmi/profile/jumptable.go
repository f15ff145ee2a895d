package profile

import (
	"encoding/binary"
	"fmt"
	"sort"

	"github.com/bulwark-project/bulwark/internal/vmi/kallsyms"
	"github.com/bulwark-project/bulwark/internal/vmi/kimage"
)

// JumpSite is a static-key (jump label) patch site: the kernel rewrites the
// instruction at Code between a NOP and a jump to Target whenever the key
// flips (tracing switched on, a clocksource change, ...). Introspection must
// tell that legitimate rewrite apart from a rootkit's patch.
type JumpSite struct {
	Code   uint64 `json:"c"` // link-time address of the patched instruction
	Target uint64 `json:"t"` // link-time address it jumps to when enabled
	Len    uint8  `json:"n"` // 2 (short jump) or 5 (near jump) bytes
}

// maxJumpSites bounds the table (6.1 has a few tens of thousands).
const maxJumpSites = 1 << 18

// jumpTable reads __jump_table from the image: 16-byte entries of
// {s32 code, s32 target, s64 key}, each relative to its own field
// (CONFIG_HAVE_ARCH_JUMP_LABEL_RELATIVE, always on x86-64). Sites outside
// kernel text (modules, init text freed after boot) are skipped.
func jumpTable(vmlinux []byte, segs kimage.Segments, syms *kallsyms.Table, stext, etext uint64) ([]JumpSite, error) {
	start, _, ok1 := syms.Lookup("__start___jump_table")
	stop, _, ok2 := syms.Lookup("__stop___jump_table")
	if !ok1 || !ok2 || stop < start {
		return nil, nil // no jump labels: nothing to tolerate
	}
	n := (stop - start) / 16
	if n > maxJumpSites {
		return nil, fmt.Errorf("profile: __jump_table has %d entries, more than %d", n, maxJumpSites)
	}
	off, ok := segs.Offset(start, int64(n*16))
	if !ok {
		return nil, fmt.Errorf("profile: __jump_table at %#x is not in the image", start)
	}
	out := make([]JumpSite, 0, n)
	for i := uint64(0); i < n; i++ {
		e := vmlinux[off+int64(i*16):]
		entry := start + i*16
		code := entry + uint64(int64(int32(binary.LittleEndian.Uint32(e[0:]))))
		target := entry + 4 + uint64(int64(int32(binary.LittleEndian.Uint32(e[4:]))))
		if code < stext || code >= etext {
			continue
		}
		// The image holds the site's build-time form: a short jump (eb) or
		// two-byte NOP (66 90) makes a 2-byte site, anything else 5.
		n := uint8(5)
		if o, ok := segs.Offset(code, 2); ok {
			if b := vmlinux[o:]; b[0] == 0xeb || b[0] == 0x66 && b[1] == 0x90 {
				n = 2
			}
		}
		out = append(out, JumpSite{Code: code, Target: target, Len: n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Code < out[j].Code })
	return out, nil
}
