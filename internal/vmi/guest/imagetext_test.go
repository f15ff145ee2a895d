package guest

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/vmi/kallsyms"
	"github.com/bulwark-project/bulwark/internal/vmi/kimage/kimagetest"
	"github.com/bulwark-project/bulwark/internal/vmi/mem"
)

var (
	imgOnce sync.Once
	imgText *ImageText
	imgSyms *kallsyms.Table
	imgErr  error
	imgCold time.Duration
)

// debianImage derives the installed cloud kernel's expected text once.
func debianImage(tb testing.TB) (*ImageText, *kallsyms.Table) {
	_, vmlinux := kimagetest.Vmlinux(tb)
	imgOnce.Do(func() {
		start := time.Now()
		if imgSyms, imgErr = kallsyms.FromImage(vmlinux); imgErr != nil {
			return
		}
		imgText, imgErr = BuildImageText(vmlinux, imgSyms)
		imgCold = time.Since(start)
	})
	if imgErr != nil {
		tb.Fatal(imgErr)
	}
	return imgText, imgSyms
}

const testSlide = 0x1e000000 // a 2 MiB-aligned KASLR slide

// loadedKernel lays the image out in guest RAM as the decompressor would
// with testSlide: relocated, at its link-time physical address.
func loadedKernel(tb testing.TB, img *ImageText) ([]byte, *Kernel) {
	ram := make([]byte, 64<<20)
	for _, r := range img.Ranges {
		buf := make([]byte, r.End-r.Start)
		img.expected(buf, r.Start, testSlide)
		copy(ram[r.Start-0xffffffff80000000:], buf)
	}
	k := &Kernel{Mem: mem.FromBytes(ram), L: &Layout{BuildID: img.BuildID}, Slide: testSlide,
		PhysBase: 1<<64 - testSlide, PageOffset: 0xffff888000000000}
	return ram, k
}

func TestDebianImageText(t *testing.T) {
	img, syms := debianImage(t)
	kinds := map[SiteKind]int{}
	for _, s := range img.Sites {
		kinds[s.Kind]++
	}
	t.Logf("derived in %v: %d relocations, %d sites %v, masked %v, frozen %v", imgCold, img.Relocs.Count(), len(img.Sites), kinds, img.Masked, img.Frozen)
	for _, k := range []SiteKind{SiteAlternative, SiteParavirt, SiteRetpoline, SiteReturn, SiteSMPLock, SiteFtrace, SiteStaticCall, SiteStaticKey} {
		if kinds[k] < 10 {
			t.Errorf("only %d %s sites", kinds[k], k)
		}
	}
	ram, k := loadedKernel(t, img)
	start := time.Now()
	c, err := k.NewImageCheck(img)
	if err != nil {
		t.Fatal(err)
	}
	ms, st, err := c.Verify(k, nil)
	t.Logf("attach + verify %v: %+v", time.Since(start), st)
	if err != nil || len(ms) != 0 {
		t.Fatalf("clean image: %v, %d mismatches, first %+v", err, len(ms), ms[:min(3, len(ms))])
	}
	pa := func(link uint64) uint64 { return link - 0xffffffff80000000 }
	site := func(kind SiteKind) PatchSite {
		for _, s := range img.Sites {
			if s.Kind == kind && len(img.sitesIn(s.Addr, s.Addr+uint64(s.Len))) == 1 {
				return s
			}
		}
		t.Fatalf("no lone %s site", kind)
		return PatchSite{}
	}
	// Legal rewrites: a return site as ret; int3, a lock prefix as ds.
	ret := site(SiteReturn)
	copy(ram[pa(ret.Addr):], retInt3)
	lock := site(SiteSMPLock)
	ram[pa(lock.Addr)] = 0x3e
	if ms, _, _ := c.Verify(k, nil); len(ms) != 0 {
		t.Fatalf("legal rewrites flagged: %+v", ms)
	}
	// A byte of commit_creds that is no patch site.
	cc, _, _ := syms.Lookup("commit_creds")
	victim := cc + 0x20
	for len(img.sitesIn(victim, victim+1)) != 0 {
		victim++
	}
	ram[pa(victim)] ^= 0xff
	// A return site jumping elsewhere, an alternative changed after attach.
	ret2 := img.Sites[sortSearch(img, ret.Addr+64, SiteReturn)]
	ram[pa(ret2.Addr)+1] ^= 0x40
	alt := site(SiteAlternative)
	ram[pa(alt.Addr)] ^= 0x01
	ms, _, _ = c.Verify(k, nil)
	want := map[string]bool{}
	for _, m := range ms {
		t.Logf("%#x %s %s %s got % x want % x", m.Addr, m.Region, m.Site, m.Why, m.Got, m.Want)
		switch {
		case m.Addr == victim+testSlide && m.Site == "" && strings.Contains(m.Why, "image"):
			want["text"] = true
		case m.Addr == ret2.Addr+testSlide && m.Site == "return_thunk":
			want["return"] = true
		case m.Addr == alt.Addr+testSlide && m.Site == "alternative" && strings.Contains(m.Why, "first attach"):
			want["alt"] = true
		}
	}
	if len(want) != 3 || len(ms) != 3 {
		t.Errorf("found %v in %d mismatches, want text, return and alt", want, len(ms))
	}
	// A wrong slide does not relocate the image.
	k.Slide += 0x200000
	k.PhysBase -= 0x200000
	if _, err := k.NewImageCheck(img); err == nil || !strings.Contains(err.Error(), "slide") {
		t.Errorf("wrong slide: %v", err)
	}
}

// sortSearch finds the first site of kind at or after a.
func sortSearch(img *ImageText, a uint64, kind SiteKind) int {
	for i, s := range img.Sites {
		if s.Addr >= a && s.Kind == kind && len(img.sitesIn(s.Addr, s.Addr+5)) == 1 {
			return i
		}
	}
	return 0
}

func TestLegalRetpoline(t *testing.T) {
	img := &ImageText{indirectThunks: map[uint64]int{0x2000: 11, 0x3000: 0}, itsThunks: map[uint64]bool{}}
	at := uint64(0x1000)
	call := func(op byte, to uint64) []byte {
		b := []byte{op, 0, 0, 0, 0}
		rel := uint32(int32(int64(to) - int64(at+5)))
		b[1], b[2], b[3], b[4] = byte(rel), byte(rel>>8), byte(rel>>16), byte(rel>>24)
		return b
	}
	tests := []struct {
		orig, got []byte
		ok        bool
	}{
		{call(0xe8, 0x2000), []byte{0x41, 0xff, 0xd3, 0x66, 0x90}, true},                      // call *%r11; nop2
		{call(0xe8, 0x3000), []byte{0xff, 0xd0, 0x0f, 0x1f, 0x00}, true},                      // call *%rax; nop3
		{call(0xe8, 0x3000), []byte{0x0f, 0xae, 0xe8, 0xff, 0xd0}, true},                      // lfence; call *%rax
		{call(0xe9, 0x3000), []byte{0xff, 0xe0, 0xcc, 0x90, 0x90}, true},                      // jmp *%rax; int3
		{call(0xe8, 0x3000), []byte{0xff, 0xd1, 0x0f, 0x1f, 0x00}, false},                     // wrong register
		{call(0xe8, 0x3000), []byte{0xff, 0xd0, 0xcc, 0xcc, 0xcc}, false},                     // int3 after a call
		{call(0xe8, 0x4000), []byte{0xff, 0xd0, 0x0f, 0x1f, 0x00}, false},                     // not a thunk call
		{[]byte{0x0f, 0x84, 0xfa, 0x1f, 0, 0}, []byte{0x75, 4, 0xff, 0xe0, 0xcc, 0x90}, true}, // jz thunk → jnz over; jmp *%rax
	}
	for i, tc := range tests {
		if got := img.legalRetpoline(at, tc.got, tc.orig, 0); got != tc.ok {
			t.Errorf("%d: % x over % x: legal %v, want %v", i, tc.got, tc.orig, got, tc.ok)
		}
	}
}

func TestMergeNops(t *testing.T) {
	in := []byte{0xff, 0xd0, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0xcc, 0x90}
	want := append(append([]byte{0xff, 0xd0}, nopsCanon[8]...), 0x90, 0xcc, 0x90)
	if got := mergeNops(in); !bytes.Equal(got, want) {
		t.Errorf("mergeNops = % x, want % x", got, want)
	}
}

// BenchmarkImageVerify is a warm verification of the whole kernel text and
// read-only data (about 4600 pages) against the image.
func BenchmarkImageVerify(b *testing.B) {
	img, _ := debianImage(b)
	_, k := loadedKernel(b, img)
	c, err := k.NewImageCheck(img)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if ms, _, err := c.Verify(k, nil); err != nil || len(ms) != 0 {
			b.Fatal(err, len(ms))
		}
	}
}

func FuzzRelativeSites(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, uint64(0xffffffff81000000), 4)
	f.Fuzz(func(t *testing.T, tab []byte, lo uint64, stride int) {
		out := RelativeSites(tab, lo, stride)
		if stride >= 4 && len(out) > len(tab)/stride {
			t.Fatalf("%d sites from %d bytes", len(out), len(tab))
		}
	})
}
