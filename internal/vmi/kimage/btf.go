package kimage

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cilium/ebpf/btf"
)

// ErrNoBTF reports a vmlinux without BTF (CONFIG_DEBUG_INFO_BTF=n).
var ErrNoBTF = errors.New("kimage: no BTF in the kernel image (CONFIG_DEBUG_INFO_BTF not set?)")

// btfMagic is the little-endian BTF header magic 0xeB9F.
const btfMagic = 0xeb9f

// BTF loads the kernel's BTF type information, the source of every structure
// layout in a profile. It is read from the .BTF section of the ELF; when the
// ELF loader refuses the file (for instance because a hostile or unusual image
// has relocation sections it cannot apply), the .BTF section is located by
// hand and parsed as a raw blob.
func BTF(vmlinux []byte) (*btf.Spec, error) {
	spec, err := btf.LoadSpecFromReader(bytes.NewReader(vmlinux))
	if err == nil {
		return spec, nil
	}
	raw, rawErr := btfSection(vmlinux)
	if rawErr != nil {
		if errors.Is(rawErr, ErrNoBTF) {
			return nil, rawErr
		}
		return nil, fmt.Errorf("kimage: loading BTF: %w (and %v)", err, rawErr)
	}
	spec, err2 := btf.LoadSpecFromReader(bytes.NewReader(raw))
	if err2 != nil {
		return nil, fmt.Errorf("kimage: loading BTF: %w; raw .BTF section: %v", err, err2)
	}
	return spec, nil
}

// btfSection returns the bytes of the .BTF section, checked for the magic.
func btfSection(vmlinux []byte) ([]byte, error) {
	f, err := elf.NewFile(bytes.NewReader(vmlinux))
	if err != nil {
		return nil, fmt.Errorf("parsing ELF: %w", err)
	}
	defer f.Close()
	s := f.Section(".BTF")
	if s == nil || s.Type == elf.SHT_NOBITS {
		return nil, ErrNoBTF
	}
	if s.Offset > uint64(len(vmlinux)) || s.Size > uint64(len(vmlinux))-s.Offset {
		return nil, fmt.Errorf(".BTF section [%#x, +%#x) lies outside the image", s.Offset, s.Size)
	}
	raw := vmlinux[s.Offset : s.Offset+s.Size]
	if len(raw) < 24 || binary.LittleEndian.Uint16(raw) != btfMagic {
		return nil, errors.New(".BTF section does not start with the BTF magic")
	}
	return raw, nil
}
