package vmcoreinfo

// Info is a parsed VMCOREINFO text.
//
// Lines of the form PREFIX(name)=value go into the map of their prefix,
// keyed by name ("OFFSET(page.flags)" under Offsets["page.flags"]); the
// kernel writes SYMBOL values in hex and the others in decimal. Every other
// KEY=VALUE line (OSRELEASE, BUILD-ID, PAGESIZE, KERNELOFFSET, CRASHTIME,
// and keys this package does not know) is kept as text in Values, and the
// ones it knows are also parsed into fields.
type Info struct {
	OSRelease string // OSRELEASE, e.g. "6.1.0-28-cloud-amd64"
	BuildID   string // BUILD-ID, hex
	PageSize  uint64 // PAGESIZE

	Symbols map[string]uint64 // SYMBOL(name)=hex: virtual addresses
	Numbers map[string]int64  // NUMBER(name)=decimal, signed (phys_base may be negative)
	Sizes   map[string]uint64 // SIZE(type)=decimal
	Offsets map[string]uint64 // OFFSET(type.member)=decimal
	Lengths map[string]uint64 // LENGTH(name)=decimal
	Values  map[string]string // other KEY=VALUE lines, as text

	// Skipped counts malformed lines that Parse ignored.
	Skipped int
	// Rejected counts the candidates Find looked at and rejected before
	// this one (fakes, stale copies, format strings in the kernel image).
	Rejected int

	kernelOffset uint64
}

// Symbol returns SYMBOL(name), a kernel virtual address.
func (i *Info) Symbol(name string) (uint64, bool) {
	v, ok := i.Symbols[name]
	return v, ok
}

// Number returns NUMBER(name).
func (i *Info) Number(name string) (int64, bool) {
	v, ok := i.Numbers[name]
	return v, ok
}

// Offset returns OFFSET(name), name being "type.member".
func (i *Info) Offset(name string) (uint64, bool) {
	v, ok := i.Offsets[name]
	return v, ok
}

// Size returns SIZE(name).
func (i *Info) Size(name string) (uint64, bool) {
	v, ok := i.Sizes[name]
	return v, ok
}

// Length returns LENGTH(name).
func (i *Info) Length(name string) (uint64, bool) {
	v, ok := i.Lengths[name]
	return v, ok
}

// PhysBase is NUMBER(phys_base), the difference between where the kernel
// image runs in physical memory and where it was linked to, signed; 0 if
// absent. Pass it to x86.KernelTextToPhys as uint64(PhysBase()).
func (i *Info) PhysBase() int64 { return i.Numbers["phys_base"] }

// KernelOffset is KERNELOFFSET, the KASLR displacement of the kernel image
// in virtual memory; 0 if absent (Validate requires it).
func (i *Info) KernelOffset() uint64 { return i.kernelOffset }

// LA57 reports NUMBER(pgtable_l5_enabled): whether the kernel runs with
// 5-level paging, as it claims.
func (i *Info) LA57() bool { return i.Numbers["pgtable_l5_enabled"] == 1 }
