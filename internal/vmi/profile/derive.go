package profile

import (
	"bytes"
	"fmt"
	"os"
	"strings"

	"github.com/bulwark-project/bulwark/internal/vmi/kallsyms"
	"github.com/bulwark-project/bulwark/internal/vmi/kimage"
	"github.com/cilium/ebpf/btf"
)

// maxImageFile bounds the bzImage read from disk; real ones are 5-20 MiB.
const maxImageFile = 256 << 20

// Derive builds the profile of the kernel in a bzImage (or vmlinux) file.
func Derive(bzImagePath string) (*Profile, error) {
	img, err := readImage(bzImagePath)
	if err != nil {
		return nil, err
	}
	vmlinux, err := kimage.Extract(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", bzImagePath, err)
	}
	p, err := FromVmlinux(vmlinux)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", bzImagePath, err)
	}
	return p, nil
}

// FromVmlinux builds the profile of a decompressed kernel.
func FromVmlinux(vmlinux []byte) (*Profile, error) {
	id, err := kimage.BuildID(vmlinux)
	if err != nil {
		return nil, err
	}
	segs, err := kimage.LoadSegments(vmlinux)
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	syms, err := kallsyms.FromImage(vmlinux)
	if err != nil {
		return nil, err
	}
	spec, err := kimage.BTF(vmlinux)
	if err != nil {
		return nil, err
	}
	p := &Profile{
		FormatVersion: FormatVersion,
		BuildID:       id,
		Symbols:       map[string]uint64{},
		Offsets:       map[string]uint64{},
		Sizes:         map[string]uint64{},
		Kallsyms:      syms,
	}
	for _, w := range wantedSymbols {
		for _, name := range w.alts {
			if a, _, ok := syms.Lookup(name); ok {
				p.Symbols[name] = a
			}
		}
		if w.required && !anyPresent(p.Symbols, w.alts) {
			return nil, fmt.Errorf("profile: kallsyms has no %v", w.alts)
		}
	}
	p.SyscallTable, err = syscallTable(vmlinux, segs, syms, p.Symbols["sys_call_table"], p.Symbols["_stext"], p.Symbols["_etext"])
	if err != nil {
		return nil, err
	}
	p.JumpSites, err = jumpTable(vmlinux, segs, syms, p.Symbols["_stext"], p.Symbols["_etext"])
	if err != nil {
		return nil, err
	}
	if err := resolveTypes(p, spec); err != nil {
		return nil, err
	}
	addr, ok := p.Symbols["linux_banner"]
	p.Banner, p.Release, err = banner(vmlinux, segs, addr, ok)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// resolveTypes fills Offsets and Sizes from BTF.
func resolveTypes(p *Profile, spec *btf.Spec) error {
	for _, w := range wantedOffsets {
		var firstErr error
		for _, path := range w.alts {
			typ, member, _ := strings.Cut(path, ".")
			f, err := Member(spec, typ, member)
			if err != nil {
				firstErr = cmpErr(firstErr, err)
				continue
			}
			p.Offsets[path] = f.Offset
			p.Sizes[path] = f.Size
		}
		if w.required && !anyPresent(p.Offsets, w.alts) {
			return fmt.Errorf("profile: none of %v resolved: %w", w.alts, firstErr)
		}
	}
	for _, w := range wantedSizes {
		var firstErr error
		for _, name := range w.alts {
			n, err := Sizeof(spec, name)
			if err != nil {
				firstErr = cmpErr(firstErr, err)
				continue
			}
			p.Sizes[name] = n
		}
		if w.required && !anyPresent(p.Sizes, w.alts) {
			return fmt.Errorf("profile: no size for %v: %w", w.alts, firstErr)
		}
	}
	return nil
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

func readImage(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	if !st.Mode().IsRegular() || st.Size() > maxImageFile {
		return nil, fmt.Errorf("profile: %s is not a regular file of at most %d bytes", path, maxImageFile)
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil {
		return nil, fmt.Errorf("profile: reading %s: %w", path, err)
	}
	return b, nil
}
