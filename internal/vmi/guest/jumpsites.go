package guest

import (
	"bytes"
	"encoding/binary"
	"sort"
	"time"
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

// Patching in progress: the kernel switches a static key with
// text_poke_bp, which writes an int3 over the site's first byte, then the
// tail, then the new first byte, with CPUs that hit the int3 waiting in
// its handler. A site read in between is an int3 followed by the tail of
// its old or its new form. Such a site is read again a few times; only an
// int3 that stays (nothing but the patcher removes it within
// milliseconds) or bytes that are neither form are reported.
const (
	patchRereads     = 5
	patchRereadPause = 2 * time.Millisecond
)

// settled judges a patch site's bytes b (read at runtime address at) and,
// while judge refuses them and they start with an int3, reads them again
// a few times: text_poke_bp is switching the site (ftrace, static calls,
// static keys all go through it), and the judgement is of what it
// settles to. An int3 that stays is reported like any illegal encoding.
// b holds the last bytes read.
func (k *Kernel) settled(at uint64, b []byte, judge func([]byte) string) string {
	why := judge(b)
	for i := 0; why != "" && len(b) > 0 && b[0] == 0xcc && i < patchRereads; i++ {
		time.Sleep(patchRereadPause)
		if k.Read(at, b) != nil {
			break
		}
		why = judge(b)
	}
	return why
}

// settledAny is settled for sites whose legal encoding depends on data the
// kernel changes just before rewriting them (a static call's key, the
// ftrace ops list): any refused reading is read again a few times.
func (k *Kernel) settledAny(at uint64, b []byte, judge func([]byte) string) string {
	why := judge(b)
	for i := 0; why != "" && i < patchRereads; i++ {
		time.Sleep(patchRereadPause)
		if k.Read(at, b) != nil {
			break
		}
		why = judge(b)
	}
	return why
}

// siteState classifies a jump site's bytes.
type siteState uint8

const (
	siteLegal siteState = iota
	sitePatching
	siteBad
)

func jumpSiteState(b []byte, code, target uint64) siteState {
	var nop, jmp []byte
	if len(b) == 5 {
		nop = nop5
		jmp = []byte{0xe9, 0, 0, 0, 0}
		binary.LittleEndian.PutUint32(jmp[1:], uint32(int32(int64(target)-int64(code+5))))
	} else {
		nop = nop2
		jmp = []byte{0xeb, byte(int8(int64(target) - int64(code+2)))}
	}
	if bytes.Equal(b, nop) || bytes.Equal(b, jmp) {
		return siteLegal
	}
	if b[0] == 0xcc && (bytes.Equal(b[1:], nop[1:]) || bytes.Equal(b[1:], jmp[1:])) {
		return sitePatching
	}
	return siteBad
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
		st := jumpSiteState(b, code, target)
		for i := 0; st == sitePatching && i < patchRereads; i++ {
			time.Sleep(patchRereadPause)
			if err := k.Read(code, b); err != nil {
				return out, err
			}
			st = jumpSiteState(b, code, target)
		}
		if st != siteLegal {
			out = append(out, BadJumpSite{Addr: code, Bytes: append([]byte(nil), b...)})
		}
	}
	return out, nil
}
