// Package vmcoreinfo finds and parses the Linux kernel's VMCOREINFO in
// guest memory: the text the kernel (CONFIG_CRASH_CORE) keeps for crash
// dump tools, with its release, page size, KASLR offset, phys_base, the
// addresses of key symbols (init_top_pgt, _stext, init_uts_ns, ...) and
// structure sizes and offsets. It is the first foothold of introspection:
// from it, kernel addresses can be turned into guest-physical ones.
//
// The text is read from guest RAM, so it is hostile input: parsing is
// bounded and skips what it does not understand, and Find keeps looking
// past the fakes the guest can plant (any process can write
// "OSRELEASE=..." into its own pages). A text that parses and validates is
// still only the guest's claim; Verify checks it against the page tables
// the vCPU is actually using.
package vmcoreinfo
