package kimage

import (
	"bytes"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
)

// ErrNoBuildID reports an ELF without a GNU build-id note.
var ErrNoBuildID = errors.New("kimage: no GNU build-id note in the ELF")

const (
	ntGNUBuildID = 3
	// maxBuildID bounds the descriptor: real ones are 20 bytes (SHA-1).
	maxBuildID = 64
	maxNotes   = 4096
)

// BuildID returns the hex GNU build id of a vmlinux ELF. It is the identity a
// profile is cached under: two kernels with the same build id were produced
// from the same link, so their symbols and structure layouts are the same.
//
// The kernel's build id lives in the .notes section (PT_NOTE segment); both
// section and program headers are searched so that an image with stripped
// section headers still works.
func BuildID(vmlinux []byte) (string, error) {
	f, err := elf.NewFile(bytes.NewReader(vmlinux))
	if err != nil {
		return "", fmt.Errorf("kimage: parsing ELF: %w", err)
	}
	defer f.Close()
	var regions [][2]uint64 // file offset, size
	for _, s := range f.Sections {
		if s.Type == elf.SHT_NOTE {
			regions = append(regions, [2]uint64{s.Offset, s.FileSize})
		}
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_NOTE {
			regions = append(regions, [2]uint64{p.Off, p.Filesz})
		}
	}
	order := f.ByteOrder
	for _, r := range regions {
		if r[0] > uint64(len(vmlinux)) || r[1] > uint64(len(vmlinux))-r[0] {
			continue
		}
		if id, ok := findBuildID(vmlinux[r[0]:r[0]+r[1]], order.Uint32); ok {
			return hex.EncodeToString(id), nil
		}
	}
	return "", ErrNoBuildID
}

// findBuildID walks the ELF notes in b (namesz, descsz, type, name, desc, each
// padded to 4 bytes) looking for a "GNU" note of type NT_GNU_BUILD_ID.
func findBuildID(b []byte, u32 func([]byte) uint32) ([]byte, bool) {
	align4 := func(n uint64) uint64 { return (n + 3) &^ 3 }
	for range maxNotes {
		if len(b) < 12 {
			return nil, false
		}
		namesz, descsz, typ := uint64(u32(b)), uint64(u32(b[4:])), u32(b[8:])
		b = b[12:]
		nameEnd := align4(namesz)
		if nameEnd > uint64(len(b)) {
			return nil, false
		}
		name := b[:namesz]
		b = b[nameEnd:]
		descEnd := align4(descsz)
		if descEnd > uint64(len(b)) {
			return nil, false
		}
		desc := b[:descsz]
		b = b[descEnd:]
		if typ == ntGNUBuildID && string(name) == "GNU\x00" && len(desc) > 0 && len(desc) <= maxBuildID {
			return bytes.Clone(desc), true
		}
	}
	return nil, false
}
