package hv

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Registers is the state of one vCPU that introspection needs: where the
// page tables are (CR3, CR4.LA57), where the per-CPU area is (GS base) and
// where the interrupt table is (IDT).
type Registers struct {
	CPU      int    `json:"cpu"`
	RIP      uint64 `json:"rip"`
	RSP      uint64 `json:"rsp"`
	CR0      uint64 `json:"cr0"`
	CR3      uint64 `json:"cr3"`
	CR4      uint64 `json:"cr4"`
	EFER     uint64 `json:"efer"`
	FSBase   uint64 `json:"fs_base"`
	GSBase   uint64 `json:"gs_base"`
	IDTBase  uint64 `json:"idt_base"`
	IDTLimit uint32 `json:"idt_limit"`
	CPL      int    `json:"cpl"`
}

// LA57 reports whether 5-level paging is on (CR4 bit 12).
func (r Registers) LA57() bool { return r.CR4&(1<<12) != 0 }

// RegisterReader is implemented by instances that can report vCPU
// registers (QEMU through QMP).
type RegisterReader interface {
	Registers(ctx context.Context) ([]Registers, error)
}

var (
	cpuLine = regexp.MustCompile(`^CPU#(\d+)`)
	kv      = regexp.MustCompile(`\b(RIP|RSP|CR0|CR3|CR4|EFER|CPL)=([0-9a-fA-F]{1,16})\b`)
	seg     = regexp.MustCompile(`^(FS|GS) *=[0-9a-fA-F]{4} ([0-9a-fA-F]{16}) `)
	idt     = regexp.MustCompile(`^IDT= *([0-9a-fA-F]{16}) ([0-9a-fA-F]{8})`)
)

// maxRegisterText bounds the monitor output parsed (a few KiB per vCPU).
const maxRegisterText = 1 << 20

// ParseInfoRegisters parses QEMU's "info registers [-a]" text (x86-64).
// Each "CPU#N" line starts a vCPU; text without one is CPU 0.
func ParseInfoRegisters(text string) ([]Registers, error) {
	if len(text) > maxRegisterText {
		return nil, fmt.Errorf("register dump of %d bytes, more than %d", len(text), maxRegisterText)
	}
	var out []Registers
	cur := -1
	seen := map[int]bool{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimRight(line, "\r")
		if m := cpuLine.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[1])
			if n > 4096 || seen[n] {
				return nil, fmt.Errorf("register dump: bad or repeated CPU#%s", m[1])
			}
			seen[n] = true
			out = append(out, Registers{CPU: n})
			cur = len(out) - 1
			continue
		}
		if cur < 0 {
			if !kv.MatchString(line) && !seg.MatchString(line) && !idt.MatchString(line) {
				continue
			}
			out = append(out, Registers{})
			cur = 0
		}
		r := &out[cur]
		for _, m := range kv.FindAllStringSubmatch(line, -1) {
			v, err := strconv.ParseUint(m[2], 16, 64)
			if err != nil {
				continue
			}
			switch m[1] {
			case "RIP":
				r.RIP = v
			case "RSP":
				r.RSP = v
			case "CR0":
				r.CR0 = v
			case "CR3":
				r.CR3 = v
			case "CR4":
				r.CR4 = v
			case "EFER":
				r.EFER = v
			case "CPL":
				r.CPL = int(v)
			}
		}
		if m := seg.FindStringSubmatch(line); m != nil {
			v, _ := strconv.ParseUint(m[2], 16, 64)
			if m[1] == "FS" {
				r.FSBase = v
			} else {
				r.GSBase = v
			}
		}
		if m := idt.FindStringSubmatch(line); m != nil {
			r.IDTBase, _ = strconv.ParseUint(m[1], 16, 64)
			l, _ := strconv.ParseUint(m[2], 16, 32)
			r.IDTLimit = uint32(l)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("register dump holds no registers")
	}
	for _, r := range out {
		if r.CR3 == 0 {
			return nil, fmt.Errorf("register dump of CPU %d has no CR3", r.CPU)
		}
	}
	return out, nil
}
