package seccomp

import (
	"fmt"

	libseccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
)

// The program is assembled here rather than by go-seccomp-bpf's
// Policy.Assemble. In v1.6.0 a failed argument check leaves the argument in
// the accumulator and the next rules compare that, not the syscall number:
// with the vmm rules, clone(14) (a plain fork whose exit signal is 14)
// failed the CLONE_THREAD check and then matched rt_sigprocmask (number 14)
// further down, and was allowed. Every rule block below ends by reloading
// the syscall number, and a test runs the program through an independent
// BPF interpreter.
//
// Layout (every jump is short and forward; no rule block comes near the
// 255-instruction limit of a conditional jump):
//
//	ld arch; jeq AUDIT_ARCH_X86_64 ? +1 : 0; ret default
//	ld nr;   jge X32_BIT ? 0 : +1;           ret errno(ENOSYS)
//	per plain syscall:       jeq nr ? 0 : +1; ret action
//	per conditional syscall: jne nr -> next; checks -> ret action; ld nr
//	ret default
//
// The cost is one comparison per rule before a match, about a hundred at
// most: far below what a syscall costs.

// seccomp_data offsets (include/uapi/linux/seccomp.h); x86_64 is
// little-endian, so the low word of an argument comes first.
const (
	offNr   = 0
	offArch = 4
	offArgs = 16
	x32Bit  = 0x40000000
	enosys  = 38
)

func argLo(i uint32) uint32 { return offArgs + 8*i }
func argHi(i uint32) uint32 { return offArgs + 8*i + 4 }

// asm collects instructions with symbolic forward jumps.
type asm struct {
	ins    []bpf.Instruction
	jumps  []jump
	labels []int // label -> instruction index, -1 until placed
}

type jump struct {
	at   int
	t, f int // labels; fallThrough means the next instruction
}

const fallThrough = -1

func (a *asm) label() int {
	a.labels = append(a.labels, -1)
	return len(a.labels) - 1
}

func (a *asm) place(l int) { a.labels[l] = len(a.ins) }

func (a *asm) emit(i bpf.Instruction) { a.ins = append(a.ins, i) }

func (a *asm) load(off uint32) { a.emit(bpf.LoadAbsolute{Off: off, Size: 4}) }

func (a *asm) ret(v uint32) { a.emit(bpf.RetConstant{Val: v}) }

// jmp compares the accumulator with val and goes to t if cond holds, to f
// otherwise.
func (a *asm) jmp(cond bpf.JumpTest, val uint32, t, f int) {
	a.jumps = append(a.jumps, jump{at: len(a.ins), t: t, f: f})
	a.emit(bpf.JumpIf{Cond: cond, Val: val})
}

func (a *asm) skip(j jump, l int) (uint8, error) {
	if l == fallThrough {
		return 0, nil
	}
	n := a.labels[l] - j.at - 1
	if a.labels[l] < 0 || n < 0 || n > 255 {
		return 0, fmt.Errorf("jump from %d to label %d at %d out of range", j.at, l, a.labels[l])
	}
	return uint8(n), nil
}

func (a *asm) finish() ([]bpf.Instruction, error) {
	for _, j := range a.jumps {
		in := a.ins[j.at].(bpf.JumpIf)
		var err error
		if in.SkipTrue, err = a.skip(j, j.t); err != nil {
			return nil, err
		}
		if in.SkipFalse, err = a.skip(j, j.f); err != nil {
			return nil, err
		}
		a.ins[j.at] = in
	}
	return a.ins, nil
}

// program assembles a validated spec.
func (s *spec) program() ([]bpf.Instruction, error) {
	def, err := parseAction(s.DefaultAction)
	if err != nil {
		return nil, s.errorf("%w", err)
	}
	a := &asm{}
	// Another ABI (int 0x80 with the i386 table) gets the default action:
	// its numbers mean other syscalls.
	isX86 := a.label()
	a.load(offArch)
	a.jmp(bpf.JumpEqual, uint32(arch.X86_64.ID), isX86, fallThrough)
	a.ret(uint32(def))
	a.place(isX86)
	// x32 numbers (bit 30 set) reach the same kernel code by other numbers.
	a.load(offNr)
	native := a.label()
	a.jmp(bpf.JumpGreaterOrEqual, x32Bit, fallThrough, native)
	a.ret(uint32(libseccomp.ActionErrno) | enosys)
	a.place(native)

	for i, g := range s.Groups {
		act, _ := parseAction(g.Action) // checked by validate
		if len(g.Syscalls) > 0 {
			for _, n := range g.Syscalls {
				next := a.label()
				a.jmp(bpf.JumpEqual, uint32(arch.X86_64.SyscallNames[n]), fallThrough, next)
				a.ret(uint32(act))
				a.place(next)
			}
			continue
		}
		alts, _ := g.conditions() // checked by validate
		if err := a.conditional(uint32(arch.X86_64.SyscallNames[g.Syscall]), alts, uint32(act)); err != nil {
			return nil, s.errorf("group %d: %w", i, err)
		}
	}
	a.ret(uint32(def))
	prog, err := a.finish()
	if err != nil {
		return nil, s.errorf("assemble: %w", err)
	}
	return prog, nil
}

// conditional emits: if the syscall is nr and any alternative holds (all
// of its checks), return act; otherwise reload the syscall number and go on.
func (a *asm) conditional(nr uint32, alts [][]argCheck, act uint32) error {
	other := a.label() // not this syscall: the accumulator still holds nr
	a.jmp(bpf.JumpEqual, nr, fallThrough, other)
	reload := a.label()
	for i, alt := range alts {
		fail := reload
		if i < len(alts)-1 {
			fail = a.label()
		}
		for _, c := range alt {
			if err := a.check(c, fail); err != nil {
				return err
			}
		}
		a.ret(act)
		if fail != reload {
			a.place(fail)
		}
	}
	a.place(reload)
	a.load(offNr)
	a.place(other)
	return nil
}

// check emits one 64-bit argument test that falls through when it holds
// and jumps to fail when it does not.
func (a *asm) check(c argCheck, fail int) error {
	hi, lo := uint32(c.value>>32), uint32(c.value)
	pass := a.label()
	switch c.op {
	case "eq":
		a.load(argHi(c.index))
		a.jmp(bpf.JumpEqual, hi, fallThrough, fail)
		a.load(argLo(c.index))
		a.jmp(bpf.JumpEqual, lo, fallThrough, fail)
	case "ne":
		a.load(argHi(c.index))
		a.jmp(bpf.JumpEqual, hi, fallThrough, pass)
		a.load(argLo(c.index))
		a.jmp(bpf.JumpEqual, lo, fail, fallThrough)
	case "gt", "ge", "lt", "le":
		// Decided by the high words unless they are equal, then by the
		// low words (unsigned).
		above, below := pass, fail
		if c.op == "lt" || c.op == "le" {
			above, below = fail, pass
		}
		a.load(argHi(c.index))
		a.jmp(bpf.JumpGreaterThan, hi, above, fallThrough)
		a.jmp(bpf.JumpEqual, hi, fallThrough, below)
		a.load(argLo(c.index))
		lowTest := map[string]bpf.JumpTest{"gt": bpf.JumpGreaterThan, "ge": bpf.JumpGreaterOrEqual,
			"lt": bpf.JumpLessThan, "le": bpf.JumpLessOrEqual}[c.op]
		a.jmp(lowTest, lo, fallThrough, fail)
	case "bits_set", "bits_not_set":
		// One bit (validate checks it), in one of the two words.
		off, bit := argLo(c.index), lo
		if hi != 0 {
			off, bit = argHi(c.index), hi
		}
		a.load(off)
		if c.op == "bits_set" {
			a.jmp(bpf.JumpBitsSet, bit, fallThrough, fail)
		} else {
			a.jmp(bpf.JumpBitsSet, bit, fail, fallThrough)
		}
	default:
		return fmt.Errorf("unknown op %q", c.op)
	}
	a.place(pass)
	return nil
}
