package vmcoreinfo

import (
	"fmt"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/vmi/x86"
	"github.com/bulwark-project/bulwark/internal/vmi/x86/x86test"
)

// A small guest: kernel image linked at _stext = 0xffffffff9d000000
// (KERNELOFFSET 0x1c000000) and loaded at PA 2 MiB, mapped with three
// 2 MiB pages; page tables at 1 MiB.
const (
	vStext   = 0xffffffff9d000000
	pStext   = 0x200000
	physBase = int64(pStext) - int64(vStext-0xffffffff80000000)
	vPGD     = vStext + 0x10000
	vUTS     = vStext + 0x400b60
	release  = "6.1.0-28-cloud-amd64"
)

func guest(t *testing.T) *x86test.Image {
	t.Helper()
	img, err := x86test.New(8<<20, 0x100000, 0x140000, false)
	if err != nil {
		t.Fatal(err)
	}
	for k := uint64(0); k < 3; k++ {
		if err := img.Map(vStext+k*x86.PageSize2M, pStext+k*x86.PageSize2M, x86.PageSize2M, 0); err != nil {
			t.Fatal(err)
		}
	}
	uts := pStext + (vUTS - vStext)
	copy(img.Mem[uts:], "Linux\x00")
	copy(img.Mem[uts+65:], "guest\x00")
	copy(img.Mem[uts+130:], release+"\x00")
	return img
}

func guestText(physBase int64, rel string) string {
	return fmt.Sprintf("OSRELEASE=%s\nPAGESIZE=4096\nSYMBOL(init_uts_ns)=%x\nOFFSET(uts_namespace.name)=0\n"+
		"SYMBOL(swapper_pg_dir)=%x\nSYMBOL(_stext)=%x\nNUMBER(phys_base)=%d\nSYMBOL(init_top_pgt)=%x\n"+
		"NUMBER(pgtable_l5_enabled)=0\nKERNELOFFSET=1c000000\n", rel, uint64(vUTS), uint64(vPGD), uint64(vStext), physBase, uint64(vPGD))
}

func TestVerify(t *testing.T) {
	img := guest(t)
	m := img.Phys()
	good, err := Parse([]byte(guestText(physBase, release)))
	if err != nil {
		t.Fatal(err)
	}
	if good.PhysBase() >= 0 {
		t.Fatalf("test guest should have a negative phys_base, has %d", good.PhysBase())
	}
	if err := good.Verify(m, img.CR3|1<<12|0x5, false); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if err := good.Verify(m, img.CR3, true); err == nil {
		t.Error("LA57 mismatch accepted")
	}
	bad := map[string]string{
		"phys_base":      guestText(physBase+0x200000, release),
		"release":        guestText(physBase, "6.1.0-99-cloud-amd64"),
		"unmapped uts":   strings.Replace(guestText(physBase, release), fmt.Sprintf("%x", uint64(vUTS)), fmt.Sprintf("%x", uint64(vStext+0x800000)), 1),
		"no init_uts_ns": strings.Replace(guestText(physBase, release), "SYMBOL(init_uts_ns)", "SYMBOL(other)", 1),
	}
	for name, text := range bad {
		info, err := Parse([]byte(text))
		if err != nil {
			t.Fatal(err)
		}
		if err := info.Verify(m, img.CR3, false); err == nil {
			t.Errorf("%s: Verify accepted", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// TestFindVerified: a forged text earlier in RAM validates, so Find takes
// it; FindVerified passes over it to the kernel's own.
func TestFindVerified(t *testing.T) {
	img := guest(t)
	copy(img.Mem[0x10000:], guestText(physBase-0x100000, release)+"\x00") // forged phys_base
	copy(img.Mem[0x7f0000:], guestText(physBase, release)+"\x00")
	m := img.Phys()
	_, at, err := Find(m)
	if err != nil || at != 0x10000 {
		t.Fatalf("Find = %#x, %v; want the forgery at 0x10000", at, err)
	}
	info, at, err := FindVerified(m, img.CR3, false)
	if err != nil || at != 0x7f0000 || info.Rejected != 1 {
		t.Fatalf("FindVerified = %#x, %v", at, err)
	}
}
