package vmcoreinfo

import (
	"fmt"

	"github.com/bulwark-project/bulwark/internal/vmi/x86"
)

// Validate checks that the text is plausibly an x86-64 Linux kernel's
// VMCOREINFO and holds what introspection needs: 4 KiB pages, a release
// string that looks like one, the kernel's top page table (init_top_pgt or
// swapper_pg_dir) at an address of the kernel image mapping, and a KASLR
// offset that keeps the kernel inside that mapping. It rejects most fakes
// and the "OSRELEASE=%s" format string in the kernel's own image; it
// cannot tell a careful forgery from the real text (Verify can).
func (i *Info) Validate() error {
	if i.PageSize != 4096 {
		return fmt.Errorf("vmcoreinfo: PAGESIZE %d, not 4096", i.PageSize)
	}
	if !plausibleRelease(i.OSRelease) {
		return fmt.Errorf("vmcoreinfo: implausible OSRELEASE %q", i.OSRelease)
	}
	found := false
	for _, name := range []string{"init_top_pgt", "swapper_pg_dir"} {
		va, ok := i.Symbols[name]
		if !ok {
			continue
		}
		if va < x86.KernelTextStart || va >= x86.KernelTextEnd {
			return fmt.Errorf("vmcoreinfo: SYMBOL(%s)=%#x is outside the kernel image mapping", name, va)
		}
		found = true
	}
	if !found {
		return fmt.Errorf("vmcoreinfo: neither SYMBOL(init_top_pgt) nor SYMBOL(swapper_pg_dir)")
	}
	if _, ok := i.Values["KERNELOFFSET"]; !ok {
		return fmt.Errorf("vmcoreinfo: no KERNELOFFSET")
	}
	if i.kernelOffset >= x86.KernelTextEnd-x86.KernelTextStart {
		return fmt.Errorf("vmcoreinfo: KERNELOFFSET %#x moves the kernel out of its 1 GiB mapping", i.kernelOffset)
	}
	if v, ok := i.Numbers["pgtable_l5_enabled"]; ok && v != 0 && v != 1 {
		return fmt.Errorf("vmcoreinfo: NUMBER(pgtable_l5_enabled)=%d", v)
	}
	return nil
}

// plausibleRelease accepts what uname -r looks like: 1 to 64 characters
// (__NEW_UTS_LEN) of [0-9A-Za-z._+~-], starting with a digit and holding a
// dot ("6.1.0-28-cloud-amd64").
func plausibleRelease(s string) bool {
	if len(s) == 0 || len(s) > 64 || s[0] < '0' || s[0] > '9' {
		return false
	}
	dot := false
	for _, c := range []byte(s) {
		switch {
		case c == '.':
			dot = true
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '-', c == '_', c == '+', c == '~':
		default:
			return false
		}
	}
	return dot
}
