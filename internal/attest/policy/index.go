package policy

import (
	"sort"
)

// index is a validated policy in the form Evaluate looks things up in:
// digests decoded once, images by kernel and initrd digest. It is built by
// Validate and only read afterwards.
type index struct {
	bulwark, qemu, hardening *allow
	seccomp, firmware        map[string]*allow
	seccompNames             []string // sorted: each must be measured

	images   map[string]*imageIx
	all      []*imageIx // sorted by name: what "*" allows
	byKernel map[[32]byte][]*imageIx
	byInitrd map[[32]byte][]*imageIx

	vms map[string]*vmIx
	def *vmIx // vm_default; nil when absent

	ignoreKinds map[string]bool
	introMaxAge int64 // ns
	rtMaxAge    int64 // ns
}

// allow is one allow-list: hex for reasons, decoded for matching. Lists
// are at most MaxDigests long, so a linear scan beats a map.
type allow struct {
	hex []string // sorted
	ds  [][32]byte
}

func newAllow(list []string) *allow {
	if len(list) == 0 {
		return nil
	}
	a := &allow{hex: append([]string(nil), list...)}
	sort.Strings(a.hex)
	for _, h := range a.hex {
		d, _ := parseDigest(h) // validated
		a.ds = append(a.ds, d)
	}
	return a
}

func (a *allow) has(d [32]byte) bool {
	if a == nil {
		return false
	}
	for i := range a.ds {
		if a.ds[i] == d {
			return true
		}
	}
	return false
}

type imageIx struct {
	name                 string
	img                  Image
	kernel, initrd, disk [32]byte
}

// vmIx is the effective rule of a VM: its own lists, with vm_default's
// images and disks where it has none.
type vmIx struct {
	images     []*imageIx // sorted by name; nil: none allowed
	anyImage   bool
	allowed    map[*imageIx]bool // when !anyImage
	definition *allow
	cmdline    *allow
	disks      *allow
}

func (v *vmIx) allows(im *imageIx) bool { return v.anyImage || v.allowed[im] }

func buildIndex(p *Policy) *index {
	ix := &index{
		bulwark:     newAllow(p.Host.BulwarkBinary),
		qemu:        newAllow(p.Host.QEMUBinary),
		hardening:   newAllow(p.Host.HardeningConfig),
		seccomp:     map[string]*allow{},
		firmware:    map[string]*allow{},
		images:      make(map[string]*imageIx, len(p.Images)),
		byKernel:    make(map[[32]byte][]*imageIx, len(p.Images)),
		byInitrd:    make(map[[32]byte][]*imageIx, len(p.Images)),
		vms:         make(map[string]*vmIx, len(p.VMs)),
		ignoreKinds: map[string]bool{},
		introMaxAge: int64(p.Introspection.MaxAge.orDefault()),
		rtMaxAge:    int64(p.Runtime.MaxAge.orDefault()),
	}
	for n, l := range p.Host.SeccompFilter {
		ix.seccomp[n] = newAllow(l)
	}
	ix.seccompNames = sortedKeys(p.Host.SeccompFilter)
	for n, l := range p.Host.QEMUFirmware {
		ix.firmware[n] = newAllow(l)
	}
	for _, name := range sortedKeys(p.Images) {
		im := p.Images[name]
		e := &imageIx{name: name, img: im}
		e.kernel, _ = parseDigest(im.Kernel)
		e.initrd, _ = parseDigest(im.Initrd)
		e.disk, _ = parseDigest(im.Disk)
		ix.images[name] = e
		ix.all = append(ix.all, e)
		ix.byKernel[e.kernel] = append(ix.byKernel[e.kernel], e)
		if im.Initrd != "" {
			ix.byInitrd[e.initrd] = append(ix.byInitrd[e.initrd], e)
		}
	}
	var defImages, defDisks []string
	if p.VMDefault != nil {
		defImages, defDisks = p.VMDefault.Images, p.VMDefault.Disks
		ix.def = ix.vmRule(defImages, defDisks, nil, nil)
	}
	for name, r := range p.VMs {
		images, disks := r.Images, r.Disks
		if len(images) == 0 {
			images = defImages
		}
		if len(disks) == 0 {
			disks = defDisks
		}
		ix.vms[name] = ix.vmRule(images, disks, r.Definition, r.Cmdline)
	}
	for _, k := range p.Introspection.IgnoreKinds {
		ix.ignoreKinds[k] = true
	}
	return ix
}

func (ix *index) vmRule(images, disks, def, cmdline []string) *vmIx {
	v := &vmIx{definition: newAllow(def), cmdline: newAllow(cmdline), disks: newAllow(disks)}
	if len(images) == 1 && images[0] == AnyImage {
		v.anyImage, v.images = true, ix.all
		return v
	}
	v.allowed = make(map[*imageIx]bool, len(images))
	for _, n := range images {
		if im := ix.images[n]; im != nil {
			v.allowed[im] = true
			v.images = append(v.images, im)
		}
	}
	sort.Slice(v.images, func(i, j int) bool { return v.images[i].name < v.images[j].name })
	return v
}
