package kimage

import (
	"encoding/binary"
)

// fakeELF builds a small x86-64 ELF executable with a .notes section holding
// the given build id (none when nil), an optional .BTF section, and filler
// bytes of the given size in a .text section, all in one PT_LOAD segment.
func fakeELF(buildID []byte, btfBlob []byte, filler int) []byte {
	le := binary.LittleEndian
	const (
		ehsize = 64
		phsize = 56
		shsize = 64
		vbase  = 0xffffffff81000000
	)
	var notes []byte
	if buildID != nil {
		notes = le.AppendUint32(notes, 4)
		notes = le.AppendUint32(notes, uint32(len(buildID)))
		notes = le.AppendUint32(notes, 3)
		notes = append(notes, "GNU\x00"...)
		notes = append(notes, buildID...)
		for len(notes)%4 != 0 {
			notes = append(notes, 0)
		}
	}
	text := make([]byte, filler)
	for i := range text {
		text[i] = byte(i*7 + i/251) // compressible but not trivial
	}
	shstr := []byte("\x00.text\x00.notes\x00.BTF\x00.shstrtab\x00")
	// Layout: header, 2 program headers, .text, .notes, .BTF, .shstrtab, section headers.
	off := ehsize + 2*phsize
	textOff := off
	off += len(text)
	notesOff := off
	off += len(notes)
	btfOff := off
	off += len(btfBlob)
	strOff := off
	off += len(shstr)
	for off%8 != 0 {
		off++
	}
	shOff := off
	nsec := 5
	b := make([]byte, shOff+nsec*shsize)
	copy(b, "\x7fELF\x02\x01\x01")
	le.PutUint16(b[16:], 2)  // ET_EXEC
	le.PutUint16(b[18:], 62) // EM_X86_64
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[24:], vbase)
	le.PutUint64(b[32:], ehsize)
	le.PutUint64(b[40:], uint64(shOff))
	le.PutUint16(b[52:], ehsize)
	le.PutUint16(b[54:], phsize)
	le.PutUint16(b[56:], 2)
	le.PutUint16(b[58:], shsize)
	le.PutUint16(b[60:], uint16(nsec))
	le.PutUint16(b[62:], uint16(nsec-1))
	ph := func(i int, typ uint32, o, sz int) {
		p := b[ehsize+i*phsize:]
		le.PutUint32(p, typ)
		le.PutUint32(p[4:], 5)
		le.PutUint64(p[8:], uint64(o))
		le.PutUint64(p[16:], vbase+uint64(o))
		le.PutUint64(p[24:], uint64(o))
		le.PutUint64(p[32:], uint64(sz))
		le.PutUint64(p[40:], uint64(sz))
		le.PutUint64(p[48:], 4)
	}
	ph(0, 1, 0, strOff) // PT_LOAD of everything up to the string table
	ph(1, 4, notesOff, len(notes))
	copy(b[textOff:], text)
	copy(b[notesOff:], notes)
	copy(b[btfOff:], btfBlob)
	copy(b[strOff:], shstr)
	sh := func(i int, name, typ uint32, o, sz int, flags uint64) {
		s := b[shOff+i*shsize:]
		le.PutUint32(s, name)
		le.PutUint32(s[4:], typ)
		le.PutUint64(s[8:], flags)
		if flags != 0 {
			le.PutUint64(s[16:], vbase+uint64(o))
		}
		le.PutUint64(s[24:], uint64(o))
		le.PutUint64(s[32:], uint64(sz))
		le.PutUint64(s[48:], 1)
	}
	sh(1, 1, 1, textOff, len(text), 6)    // .text PROGBITS AX
	sh(2, 7, 7, notesOff, len(notes), 2)  // .notes NOTE A
	sh(3, 14, 1, btfOff, len(btfBlob), 2) // .BTF PROGBITS A
	sh(4, 19, 3, strOff, len(shstr), 0)   // .shstrtab STRTAB
	return b
}

// withSize appends the 4-byte uncompressed size the kernel build adds to
// every payload but gzip's (whose own trailer ends with it).
func withSize(payload []byte, uncompressedSize int) []byte {
	return binary.LittleEndian.AppendUint32(append([]byte(nil), payload...), uint32(uncompressedSize))
}

// fakeBzImage wraps a payload in a minimal bzImage: real-mode sectors with a
// boot-protocol 2.15 setup header, then some protected-mode bytes, then the
// payload.
func fakeBzImage(full []byte, setupSects byte) []byte {
	le := binary.LittleEndian
	sects := int(setupSects)
	if sects == 0 {
		sects = 4
	}
	pm := (sects + 1) * 512
	const payloadOffset = 0x2cc
	b := make([]byte, pm+payloadOffset+len(full)+256)
	b[0x1f1] = setupSects
	copy(b[0x202:], "HdrS")
	le.PutUint16(b[0x206:], 0x020f)
	le.PutUint32(b[0x248:], payloadOffset)
	le.PutUint32(b[0x24c:], uint32(len(full)))
	copy(b[pm+payloadOffset:], full)
	return b
}
