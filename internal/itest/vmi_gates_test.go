package itest

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/vmi/guest"
)

// gateReport is a check report with each finding's evidence.
type gateReport struct {
	Findings []struct {
		Kind, Summary string
		Evidence      map[string]any
	} `json:"findings"`
	Scanned map[string]int `json:"scanned"`
}

// gateKinds are the findings of this test's checks.
var gateKinds = map[string]bool{"idt_hook": true, "idt_gate_moved": true, "syscall_hook": true, "syscall_dispatch_modified": true}

// of lists the findings of the given kinds and the scan errors of the
// views this test is about (other views' scan errors are not its subject).
func (r gateReport) of(kinds map[string]bool) []string {
	var out []string
	for _, f := range r.Findings {
		mine := strings.HasPrefix(f.Summary, "IDT ") || strings.HasPrefix(f.Summary, "syscall dispatch") || strings.HasPrefix(f.Summary, "sys_call_table")
		if kinds[f.Kind] || f.Kind == "scan_error" && (kinds == nil || mine) {
			out = append(out, f.Kind+": "+f.Summary)
		}
	}
	return out
}

// writeGate writes IDT gate v of the kernel's idt_table (the page the
// CPU entry area maps read-only as the live IDT) to point at h, keeping
// its attributes.
func writeGate(rk *rootkit, idt uint64, v int, h uint64) {
	var g [16]byte
	if err := rk.k.Read(idt+uint64(16*v), g[:]); err != nil {
		rk.t.Fatal(err)
	}
	binary.LittleEndian.PutUint16(g[0:], uint16(h))
	binary.LittleEndian.PutUint16(g[6:], uint16(h>>16))
	binary.LittleEndian.PutUint32(g[8:], uint32(h>>32))
	rk.write(idt+uint64(16*v), g[:])
}

// TestVMIGates: on a real guest, every IDT vector, every sys_call_table
// entry and x64_sys_call are checked against the kernel image exactly: a
// clean guest gives no finding of these kinds; a gate moved 0x10 bytes
// into its own handler and a table entry pointed into the middle of the
// right handler (both pass a "lies in kernel text" rule) are found, named
// with the expected and the found symbol+offset. Also the usability items:
// "not up yet" while the guest boots, vm show's monitor interval, vm log
// --boot current, and vmi check's exit status on a scan error.
func TestVMIGates(t *testing.T) {
	h := newHost(t)
	h.mustCLI(nil, "vm", "create", "gates1", "--kernel", filepath.Join(imgDir, "vmlinuz"),
		"--initrd", filepath.Join(imgDir, "initrd.img"), "--memory", "256",
		"--cmdline", "bulwark.hostname=gates1", "--disk", h.userdata("gates1", `echo "gates-ready"`)+":ro", "--monitor-interval", "1h")
	h.mustCLI(nil, "vm", "start", "gates1")
	// Straight after the start the guest is in firmware or early boot: the
	// answer says so instead of blaming a kernel option.
	if _, errs, err := h.cli("vmi", "ps", "gates1"); err != nil {
		if strings.Contains(errs, "CONFIG_CRASH_CORE") || !strings.Contains(errs, "not up yet") {
			t.Fatalf("vmi ps during boot: %q", errs)
		}
		t.Logf("during boot: %s", strings.TrimSpace(errs))
	} else {
		t.Log("vmi ps answered during boot (the guest was already up)")
	}
	h.waitConsole("gates1", "gates-ready", 1)

	out, _, err := h.cli("vm", "show", "gates1")
	if err != nil || !strings.Contains(out, "monitor interval:") || !strings.Contains(out, "1h") {
		t.Fatalf("vm show: %v\n%s", err, out)
	}
	cur, _, err := h.cli("vm", "log", "gates1", "--boot", "current")
	if err != nil || !strings.Contains(strings.SplitN(cur, "\n", 2)[0], "Linux version ") || !strings.Contains(cur, "gates-ready") {
		t.Fatalf("vm log --boot current: %v\n%.300s", err, cur)
	}

	// The report is read whatever the exit status: other views' scan
	// errors (exit 1) are not this test's subject; its own kinds are.
	check := func() gateReport {
		t.Helper()
		out, errs, err := h.cli("vmi", "check", "gates1", "-o", "json")
		var r gateReport
		if jerr := json.Unmarshal([]byte(out), &r); jerr != nil {
			t.Fatalf("vmi check: %v %v\n%s\n%s", err, jerr, errs, out)
		}
		if err != nil {
			t.Logf("vmi check exited %v: %s", err, strings.Join(r.of(nil), "; "))
		}
		return r
	}
	// Clean: every vector matches the image, so does every table entry and
	// the dispatcher.
	var idt struct {
		Items struct {
			Gates []guest.IDTEntry `json:"gates"`
			Notes []string         `json:"notes"`
		} `json:"items"`
	}
	h.mustCLI(&idt, "vmi", "idt", "gates1")
	if len(idt.Items.Gates) < 200 || len(idt.Items.Notes) != 0 {
		t.Fatalf("vmi idt: %d gates, notes %q", len(idt.Items.Gates), idt.Items.Notes)
	}
	for _, g := range idt.Items.Gates {
		if !g.OK || g.Expected == "" {
			t.Fatalf("clean guest, vector %d: %+v", g.Vector, g)
		}
	}
	for i := 0; i < 2; i++ {
		r := check()
		if bad := r.of(gateKinds); len(bad) != 0 {
			t.Fatalf("clean guest, check %d:\n%s", i, strings.Join(bad, "\n"))
		}
		if r.Scanned["idt_vectors"] < 200 || r.Scanned["dispatch_bytes"] < 1024 {
			t.Fatalf("scanned: %v (want every vector and x64_sys_call)", r.Scanned)
		}
	}

	v := h.vm("gates1")
	rk := newRootkit(t, fmt.Sprintf("/proc/%d/fd/3", v.Runtime.PID), 256<<20, filepath.Join(imgDir, "vmlinuz"))
	idtTable, err := rk.k.Sym("idt_table")
	if err != nil {
		t.Fatal(err)
	}
	int3, _ := rk.k.Sym("asm_exc_int3")

	// A gate moved 0x10 bytes into its own handler.
	var orig [16]byte
	rk.k.Read(idtTable+3*16, orig[:])
	writeGate(rk, idtTable, 3, int3+0x10)
	r := check()
	rk.write(idtTable+3*16, orig[:])
	found := false
	for _, f := range r.Findings {
		if f.Kind == "idt_gate_moved" && f.Evidence["vector"] == float64(3) {
			found = f.Evidence["expected"] == "asm_exc_int3" && f.Evidence["found"] == "asm_exc_int3+0x10" &&
				strings.Contains(f.Summary, "IDT vector 3 points to asm_exc_int3+0x10, the image defines asm_exc_int3")
			t.Logf("%s: %s", f.Kind, f.Summary)
		}
	}
	if !found {
		t.Fatalf("moved gate not reported as idt_gate_moved naming both:\n%s", strings.Join(r.of(gateKinds), "\n"))
	}

	// A sys_call_table entry into the middle of the right handler. This
	// kernel dispatches through x64_sys_call, so the table is not executed.
	table, _ := rk.k.Sym("sys_call_table")
	getpid := rk.u64(table + 39*8)
	rk.put64(table+39*8, getpid+0x10)
	r = check()
	rk.put64(table+39*8, getpid)
	want := "syscall_hook: sys_call_table[39] points to __x64_sys_getpid+0x10 instead of __x64_sys_getpid"
	if bad := r.of(gateKinds); !strings.Contains(strings.Join(bad, "\n"), want) {
		t.Fatalf("want %q in:\n%s", want, strings.Join(bad, "\n"))
	}

	// x64_sys_call: one byte of its tail padding (never executed) changed.
	dispatch, _ := rk.k.Sym("x64_sys_call")
	next, _ := rk.k.Sym("__do_sys_ni_syscall")
	var last [1]byte
	if next > dispatch && next-dispatch < 1<<16 {
		rk.k.Read(next-1, last[:])
	}
	if last[0] == 0xcc || last[0] == 0x90 {
		rk.write(next-1, []byte{last[0] ^ 0xcc ^ 0x90})
		r = check()
		rk.write(next-1, last[:])
		want := fmt.Sprintf("x64_sys_call+%#x", next-1-dispatch)
		if bad := r.of(gateKinds); !strings.Contains(strings.Join(bad, "\n"), "syscall_dispatch_modified") || !strings.Contains(strings.Join(bad, "\n"), want) {
			t.Fatalf("dispatch change at %s not found:\n%s", want, strings.Join(bad, "\n"))
		}
	} else {
		t.Logf("x64_sys_call ends in %#x, not padding: its patch is covered by the unit tests only", last[0])
	}

	// vmi check exits non-zero when part of it could not run: the module
	// list's head pointed at an unmapped address for one check.
	mods, _ := rk.k.Sym("modules")
	head := rk.u64(mods)
	rk.put64(mods, 0xffffc90000000000+0x7fff0000)
	out, errs, err := h.cli("vmi", "check", "gates1", "-o", "json")
	rk.put64(mods, head)
	var sr gateReport
	if err == nil || json.Unmarshal([]byte(out), &sr) != nil || !strings.Contains(strings.Join(sr.of(nil), "\n"), "scan_error") || !strings.Contains(errs, "could not run") {
		t.Fatalf("vmi check with a scan error: err %v, stderr %q\n%s", err, errs, out)
	}
	if r := check(); len(r.of(gateKinds)) != 0 {
		t.Fatalf("after restoring everything:\n%s", strings.Join(r.of(gateKinds), "\n"))
	}
}
