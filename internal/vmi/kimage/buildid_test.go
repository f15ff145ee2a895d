package kimage

import (
	"encoding/hex"
	"errors"
	"testing"
)

func TestBuildID(t *testing.T) {
	id, err := BuildID(fakeELF(testBuildID, nil, 10))
	if err != nil {
		t.Fatal(err)
	}
	if id != hex.EncodeToString(testBuildID) {
		t.Errorf("BuildID = %s", id)
	}
	if _, err := BuildID(fakeELF(nil, nil, 10)); !errors.Is(err, ErrNoBuildID) {
		t.Errorf("no note: err = %v", err)
	}
	if _, err := BuildID([]byte("\x7fELF garbage")); err == nil {
		t.Error("garbage accepted")
	}
}

func TestFindBuildIDBounds(t *testing.T) {
	le := func(b []byte) uint32 { return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24 }
	for name, notes := range map[string][]byte{
		"huge namesz": {0xff, 0xff, 0xff, 0xff, 20, 0, 0, 0, 3, 0, 0, 0, 'G', 'N', 'U', 0},
		"huge descsz": {4, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 3, 0, 0, 0, 'G', 'N', 'U', 0},
		"short":       {4, 0, 0},
		"wrong type":  {4, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 'G', 'N', 'U', 0, 1, 0, 0, 0},
		"empty desc":  {4, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 'G', 'N', 'U', 0},
	} {
		if id, ok := findBuildID(notes, le); ok {
			t.Errorf("%s: found %x", name, id)
		}
	}
}

func TestSegments(t *testing.T) {
	elf := fakeELF(testBuildID, nil, 100)
	segs, err := LoadSegments(elf)
	if err != nil {
		t.Fatal(err)
	}
	off, ok := segs.Offset(0xffffffff81000000+64+2*56, 4)
	if !ok || off != 64+2*56 {
		t.Fatalf("Offset = %d %v", off, ok)
	}
	if _, ok := segs.Offset(0xffffffff80000000, 1); ok {
		t.Error("address below the segment mapped")
	}
	if _, ok := segs.Offset(0xffffffff81000000+uint64(len(elf))+1, 1); ok {
		t.Error("address past the segment mapped")
	}
	if s, ok := segs.CString(elf, 0xffffffff81000000+1, 16); !ok || s != "ELF\x02\x01\x01" {
		t.Errorf("CString = %q %v", s, ok)
	}
	if _, ok := segs.CString(elf, 0xffffffff81000000+1, 3); ok {
		t.Error("CString without a NUL within the bound succeeded")
	}
}
