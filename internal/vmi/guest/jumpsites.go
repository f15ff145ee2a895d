package guest

import (
	"bytes"
	"encoding/binary"
	"sort"
)

// JumpSite is a static-key patch site (see profile.JumpSite).
type JumpSite struct {
	Code, Target uint64
	Len          uint8
}

var (
	nop5 = []byte{0x0f, 0x1f, 0x44, 0x00, 0x00}
	nop2 = []byte{0x66, 0x90}
)

// mask zeroes, in buf (the page at va), the bytes of every jump site: the
// kernel rewrites them when a static key flips, so they are kept out of
// the page hash and checked on their own (BadJumpSites).
func (k *Kernel) mask(va uint64, buf []byte) {
	sites := k.L.JumpSites
	if len(sites) == 0 {
		return
	}
	lo := va - k.Slide
	hi := lo + uint64(len(buf))
	i := sort.Search(len(sites), func(i int) bool { return sites[i].Code+uint64(sites[i].Len) > lo })
	for ; i < len(sites) && sites[i].Code < hi; i++ {
		s := sites[i]
		for a := max(s.Code, lo); a < min(s.Code+uint64(s.Len), hi); a++ {
			buf[a-lo] = 0
		}
	}
}

// BadJumpSite is a patch site holding neither its NOP nor a jump to its
// own target: code hidden where static keys live.
type BadJumpSite struct {
	Addr  uint64
	Bytes []byte
}

// BadJumpSites checks every jump site's bytes.
func (k *Kernel) BadJumpSites() ([]BadJumpSite, error) {
	var out []BadJumpSite
	buf := make([]byte, 5)
	for _, s := range k.L.JumpSites {
		if s.Len != 2 && s.Len != 5 {
			continue
		}
		code, target := s.Code+k.Slide, s.Target+k.Slide
		b := buf[:s.Len]
		if err := k.Read(code, b); err != nil {
			return out, err
		}
		ok := false
		if s.Len == 5 {
			rel := int64(target) - int64(code+5)
			ok = bytes.Equal(b, nop5) || b[0] == 0xe9 && int64(int32(binary.LittleEndian.Uint32(b[1:]))) == rel
		} else {
			rel := int64(target) - int64(code+2)
			ok = bytes.Equal(b, nop2) || b[0] == 0xeb && int64(int8(b[1])) == rel
		}
		if !ok {
			out = append(out, BadJumpSite{Addr: code, Bytes: append([]byte(nil), b...)})
		}
	}
	return out, nil
}
