package hv

import "testing"

const sampleRegs = `CPU#0
RAX=0000000000000000 RBX=ffffffff82613940 RCX=0000000000000001 RDX=0000000000025b8e
RSI=0000000000000083 RDI=0000000000025b8e RBP=0000000000000000 RSP=ffffffff82603e80
R8 =ffff88800f62a2a0 R9 =0000000000000000 R10=0000000000000001 R11=0000000000000000
R12=0000000000000000 R13=0000000000000000 R14=0000000000000000 R15=0000000000000000
RIP=ffffffff81e0b0ee RFL=00000246 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT=1
ES =0000 0000000000000000 00000000 00000000
CS =0010 0000000000000000 ffffffff 00a09b00 DPL=0 CS64 [-RA]
SS =0018 0000000000000000 ffffffff 00c09300 DPL=0 DS   [-WA]
DS =0000 0000000000000000 00000000 00000000
FS =0000 0000000000000000 00000000 00000000
GS =0000 ffff88800f600000 00000000 00000000
LDT=0000 0000000000000000 00000000 00008200 DPL=0 LDT
TR =0040 fffffe0000003000 00004087 00008900 DPL=0 TSS64-avl
GDT=     fffffe0000001000 0000007f
IDT=     fffffe0000000000 00000fff
CR0=80050033 CR2=00007f1c7d2b1000 CR3=000000000a4d6000 CR4=00350ef0
DR0=0000000000000000 DR1=0000000000000000 DR2=0000000000000000 DR3=0000000000000000
DR6=00000000ffff0ff0 DR7=0000000000000400
EFER=0000000000000d01
CPU#1
RIP=ffffffff81e0b0ee RFL=00000246 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT=1
GS =0000 ffff88800f700000 00000000 00000000
IDT=     fffffe0000000000 00000fff
CR0=80050033 CR2=0000000000000000 CR3=000000000260a000 CR4=00351ef0
`

func TestParseInfoRegisters(t *testing.T) {
	regs, err := ParseInfoRegisters(sampleRegs)
	if err != nil {
		t.Fatal(err)
	}
	if len(regs) != 2 {
		t.Fatalf("%d cpus", len(regs))
	}
	r := regs[0]
	if r.CR3 != 0xa4d6000 || r.CR4 != 0x350ef0 || r.GSBase != 0xffff88800f600000 || r.IDTBase != 0xfffffe0000000000 ||
		r.IDTLimit != 0xfff || r.RIP != 0xffffffff81e0b0ee || r.EFER != 0xd01 || r.LA57() {
		t.Fatalf("cpu0 %+v", r)
	}
	if regs[1].CPU != 1 || regs[1].CR3 != 0x260a000 || !regs[1].LA57() {
		t.Fatalf("cpu1 %+v", regs[1])
	}
	for _, bad := range []string{"", "nothing here", "CPU#0\nRIP=1\n", "CPU#0\nCR3=1\nCPU#0\nCR3=2\n"} {
		if _, err := ParseInfoRegisters(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func FuzzParseInfoRegisters(f *testing.F) {
	f.Add(sampleRegs)
	f.Fuzz(func(t *testing.T, s string) {
		regs, err := ParseInfoRegisters(s)
		if err == nil && len(regs) == 0 {
			t.Fatal("no error and no registers")
		}
	})
}
