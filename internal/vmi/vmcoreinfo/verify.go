package vmcoreinfo

import (
	"bytes"
	"fmt"

	"github.com/bulwark-project/bulwark/internal/vmi/mem"
	"github.com/bulwark-project/bulwark/internal/vmi/x86"
)

// utsLen is the size of each field of struct new_utsname (__NEW_UTS_LEN+1):
// sysname, nodename, release, version, machine, domainname.
const utsLen = 65

// Verify checks the text's claims against the page tables the vCPU is
// really using: cr3 and la57 (CR4.LA57) come from the hypervisor, not from
// guest memory. A text planted by a guest process may validate, but unless
// it repeats the kernel's own values it fails here:
//
//   - NUMBER(pgtable_l5_enabled), if present, matches la57;
//   - for _stext, init_top_pgt, swapper_pg_dir and init_uts_ns, the page
//     walk from cr3 and the phys_base arithmetic
//     (x86.KernelTextToPhys) give the same physical address;
//   - init_uts_ns, read through the page tables, holds "Linux" and the
//     release the text claims (OSRELEASE).
//
// What it cannot vouch for are the other symbols, sizes and offsets; check
// those against the kernel image where they matter.
func (i *Info) Verify(m mem.Physical, cr3 uint64, la57 bool) error {
	if v, ok := i.Numbers["pgtable_l5_enabled"]; ok && (v == 1) != la57 {
		return fmt.Errorf("vmcoreinfo: NUMBER(pgtable_l5_enabled)=%d but CR4.LA57 is %v", v, la57)
	}
	checked := 0
	for _, name := range []string{"_stext", "init_top_pgt", "swapper_pg_dir", "init_uts_ns"} {
		va, ok := i.Symbols[name]
		if !ok {
			continue
		}
		want, err := x86.KernelTextToPhys(va, uint64(i.PhysBase()))
		if err != nil {
			return fmt.Errorf("vmcoreinfo: SYMBOL(%s): %w", name, err)
		}
		got, _, err := x86.Translate(m, cr3, la57, va)
		if err != nil {
			return fmt.Errorf("vmcoreinfo: SYMBOL(%s) through CR3 %#x: %w", name, cr3, err)
		}
		if got != want {
			return fmt.Errorf("vmcoreinfo: SYMBOL(%s)=%#x is at PA %#x by the page tables but %#x by phys_base %d", name, va, got, want, i.PhysBase())
		}
		checked++
	}
	if checked == 0 {
		return fmt.Errorf("vmcoreinfo: no symbol to check against the page tables")
	}
	uts, ok := i.Symbols["init_uts_ns"]
	if !ok {
		return fmt.Errorf("vmcoreinfo: no SYMBOL(init_uts_ns) to check OSRELEASE against")
	}
	off := i.Offsets["uts_namespace.name"] // 0 in every kernel so far
	if off > 4096 {
		return fmt.Errorf("vmcoreinfo: OFFSET(uts_namespace.name)=%d", off)
	}
	var name [3 * utsLen]byte // sysname, nodename, release
	if err := x86.ReadVirt(m, cr3, la57, uts+off, name[:]); err != nil {
		return fmt.Errorf("vmcoreinfo: reading init_uts_ns: %w", err)
	}
	sysname := cstring(name[:utsLen])
	release := cstring(name[2*utsLen:])
	if sysname != "Linux" || release != i.OSRelease {
		return fmt.Errorf("vmcoreinfo: init_uts_ns holds %q %q, the text claims Linux %q", sysname, release, i.OSRelease)
	}
	return nil
}

func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
