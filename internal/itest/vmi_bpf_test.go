package itest

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/vmi/guest"
)

// bpfLoaderELF is a freestanding x86-64 Linux executable of a few hundred
// bytes (the guest has only busybox and user data is at most 64 KiB): it
// loads a two-instruction eBPF program of type progType (1 socket filter,
// 2 kprobe) named name with the bpf(2) system call, prints
// "bw-bpf-loaded" and sleeps holding the program's descriptor, or exits 1
// when the load fails.
func bpfLoaderELF(name string, progType uint32) []byte {
	const base = 0x400000
	const hdr = 64 + 56 // ELF header + one program header
	var code []byte
	emit := func(b ...byte) { code = append(code, b...) }
	imm32 := func(op byte, v uint32) { emit(op); code = binary.LittleEndian.AppendUint32(code, v) }
	// Data follows the code at fixed offsets; the code below fits in codeLen bytes.
	const codeLen = 80
	data := base + hdr + codeLen
	attrAt, insnsAt, licAt, msgAt := data, data+128, data+144, data+148
	msg := "bw-bpf-loaded\n"

	imm32(0xb8, 321)            // mov eax, SYS_bpf
	imm32(0xbf, 5)              // mov edi, BPF_PROG_LOAD
	imm32(0xbe, uint32(attrAt)) // mov esi, &attr
	imm32(0xba, 128)            // mov edx, sizeof attr
	emit(0x0f, 0x05)            // syscall
	emit(0x48, 0x85, 0xc0)      // test rax, rax
	emit(0x78, 0)               // js fail (patched below)
	js := len(code) - 1
	imm32(0xb8, 1)             // mov eax, SYS_write
	imm32(0xbf, 1)             // mov edi, 1
	imm32(0xbe, uint32(msgAt)) // mov esi, &msg
	imm32(0xba, uint32(len(msg)))
	emit(0x0f, 0x05)  // syscall
	loop := len(code) //
	imm32(0xb8, 34)   // mov eax, SYS_pause
	emit(0x0f, 0x05)  // syscall
	emit(0xeb, 0)     // jmp loop
	code[len(code)-1] = byte(int8(loop - len(code)))
	code[js] = byte(len(code) - (js + 1))
	imm32(0xb8, 60) // fail: mov eax, SYS_exit
	imm32(0xbf, 1)  // mov edi, 1
	emit(0x0f, 0x05)
	for len(code) < codeLen {
		emit(0xcc)
	}
	if len(code) != codeLen {
		panic("bpf loader: code grew past its slot")
	}

	// union bpf_attr for BPF_PROG_LOAD (128 bytes kept): prog_type,
	// insn_cnt, insns, license, log_level/size/buf, kern_version,
	// prog_flags, prog_name[16].
	attr := make([]byte, 128)
	binary.LittleEndian.PutUint32(attr[0:], progType)
	binary.LittleEndian.PutUint32(attr[4:], 2)
	binary.LittleEndian.PutUint64(attr[8:], uint64(insnsAt))
	binary.LittleEndian.PutUint64(attr[16:], uint64(licAt))
	copy(attr[48:63], name)
	insns := []byte{0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0} // r0 = 0; exit
	body := append(append(append(append(code, attr...), insns...), "GPL\x00"...), msg...)

	f := make([]byte, hdr)
	copy(f, "\x7fELF\x02\x01\x01")
	le := binary.LittleEndian
	le.PutUint16(f[16:], 2)                // ET_EXEC
	le.PutUint16(f[18:], 62)               // EM_X86_64
	le.PutUint32(f[20:], 1)                // EV_CURRENT
	le.PutUint64(f[24:], uint64(base+hdr)) // entry
	le.PutUint64(f[32:], 64)               // phoff
	le.PutUint16(f[52:], 64)               // ehsize
	le.PutUint16(f[54:], 56)               // phentsize
	le.PutUint16(f[56:], 1)                // phnum
	ph := f[64:]
	le.PutUint32(ph[0:], 1) // PT_LOAD
	le.PutUint32(ph[4:], 7) // RWX
	le.PutUint64(ph[16:], base)
	le.PutUint64(ph[24:], base)
	le.PutUint64(ph[32:], uint64(hdr+len(body)))
	le.PutUint64(ph[40:], uint64(hdr+len(body)))
	le.PutUint64(ph[48:], 0x1000)
	return append(f, body...)
}

// TestVMIBPF: real eBPF programs loaded in a live guest (with bpf(2), by
// a freestanding loader the test writes into the guest) are listed by
// `vmi bpf` with their id, type, name and tag, read from the kernel's
// program IDR. A socket filter is normal and raises nothing; a kprobe-type
// program (it would run on other kernel code's events) is
// bpf_tracing_program, named.
func TestVMIBPF(t *testing.T) {
	h := newHost(t)
	var script strings.Builder
	for i, p := range []struct {
		name string
		typ  uint32
	}{{"bwfilter", 1}, {"bwkprobe", 2}} {
		elf := base64.StdEncoding.EncodeToString(bpfLoaderELF(p.name, p.typ))
		fmt.Fprintf(&script, "echo '%s' | base64 -d >/run/bwbpf%d && chmod +x /run/bwbpf%d && (/run/bwbpf%d >/dev/console 2>&1 || echo bw-bpf-failed) &\n", elf, i, i, i)
	}
	h.mustCLI(nil, "vm", "create", "vmbpf", "--kernel", filepath.Join(imgDir, "vmlinuz"),
		"--initrd", filepath.Join(imgDir, "initrd.img"), "--memory", "256",
		"--cmdline", "bulwark.hostname=vmbpf", "--disk", h.userdata("vmbpf", script.String())+":ro")
	h.mustCLI(nil, "vm", "start", "vmbpf")
	h.waitFor("the guest's eBPF loaders", 90*time.Second, func() bool {
		log := h.consoleLog("vmbpf")
		if strings.Contains(log, "bw-bpf-failed") {
			t.Fatalf("the guest could not load its eBPF programs:\n%s", log)
		}
		return strings.Count(log, "bw-bpf-loaded") >= 2
	})
	var out struct {
		Items guest.BPFView `json:"items"`
	}
	h.mustCLI(&out, "vmi", "bpf", "vmbpf")
	if len(out.Items.Errors) != 0 {
		t.Fatalf("vmi bpf: %v", out.Items.Errors)
	}
	var filter, kprobe bool
	for _, p := range out.Items.Programs {
		t.Logf("program %d %s %q tag %s jited %v tracing %v", p.ID, p.Type, p.Name, p.Tag, p.Jited, p.Tracing)
		filter = filter || p.Name == "bwfilter" && p.Type == "socket_filter" && !p.Tracing && len(p.Tag) == 16
		kprobe = kprobe || p.Name == "bwkprobe" && p.Type == "kprobe" && p.Tracing
	}
	if !filter || !kprobe {
		t.Fatalf("the guest's programs are not listed as loaded (socket filter %v, kprobe %v): %+v", filter, kprobe, out.Items.Programs)
	}
	rep := imageCheck(t, h, "vmbpf")
	found := false
	for _, f := range rep.Findings {
		if f.Kind == "bpf_tracing_program" {
			t.Log(f.Summary)
			if strings.Contains(f.Summary, "bwfilter") {
				t.Errorf("a socket filter reported as tracing: %s", f.Summary)
			}
			found = found || strings.Contains(f.Summary, "bwkprobe")
		}
	}
	if !found {
		t.Fatalf("the kprobe program is not a bpf_tracing_program finding: %+v", rep.Findings)
	}
}
