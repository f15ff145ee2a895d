package itest

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/hv"
	"github.com/bulwark-project/bulwark/internal/vmi/engine"
	"github.com/bulwark-project/bulwark/internal/vmi/guest"
	"github.com/bulwark-project/bulwark/internal/vmi/lime"
	"github.com/bulwark-project/bulwark/internal/vmi/mem"
	"github.com/bulwark-project/bulwark/internal/vmi/profile"
	"github.com/bulwark-project/bulwark/internal/vmi/vmcoreinfo"
	"github.com/bulwark-project/bulwark/internal/vmi/x86"
)

// rootkit is the test's own view of the guest kernel, with write access
// to the RAM file that the monitor does not have: it plays the attacker.
type rootkit struct {
	t   *testing.T
	k   *guest.Kernel
	rw  *os.File
	ram *mem.RAM
}

func newRootkit(t *testing.T, ramPath string, ramSize uint64, kernel string) *rootkit {
	t.Helper()
	// The path is the hypervisor's /proc/PID/fd/3 (a magic link, which
	// mem.OpenRAM's O_NOFOLLOW refuses): the test opens it itself.
	rf, err := os.Open(ramPath)
	if err != nil {
		t.Fatal(err)
	}
	ram, err := mem.MapRAM(rf, mem.MicrovmLayout(ramSize))
	if err != nil {
		t.Fatal(err)
	}
	info, _, err := vmcoreinfo.Find(ram)
	if err != nil {
		t.Fatal(err)
	}
	pgd, _ := info.Symbol("init_top_pgt")
	pgdPA, err := x86.KernelTextToPhys(pgd, uint64(info.PhysBase()))
	if err != nil {
		t.Fatal(err)
	}
	prof, err := profile.LoadOrDerive(t.TempDir(), kernel)
	if err != nil {
		t.Fatal(err)
	}
	k, err := guest.Attach(ram, engine.LayoutOf(prof), []hv.Registers{{CR3: pgdPA}})
	if err != nil {
		t.Fatal(err)
	}
	rw, err := os.OpenFile(ramPath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rw.Close(); ram.Close() })
	return &rootkit{t: t, k: k, rw: rw, ram: ram}
}

func (r *rootkit) write(va uint64, b []byte) {
	r.t.Helper()
	pa, err := r.k.Phys(va)
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.rw.WriteAt(b, int64(pa)); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rootkit) u64(va uint64) uint64 {
	r.t.Helper()
	v, err := r.k.U64(va)
	if err != nil {
		r.t.Fatal(err)
	}
	return v
}

func (r *rootkit) put64(va, v uint64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	r.write(va, b[:])
}

type scanReport struct {
	Millis   float64 `json:"millis"`
	Findings []struct {
		Kind, Summary string
	} `json:"findings"`
}

func (h *host) vmiCheck(name string) scanReport {
	h.t.Helper()
	var rep scanReport
	h.mustCLI(&rep, "vmi", "check", name)
	return rep
}

func kinds(r scanReport) string {
	var k []string
	for _, f := range r.Findings {
		k = append(k, f.Kind+": "+f.Summary)
	}
	return strings.Join(k, "\n")
}

// TestIntrospection: the monitor lists a guest's processes from outside,
// stays quiet on a clean guest, and catches a process unlinked from the
// task list, a hooked syscall-table entry and patched kernel text, written
// into guest memory by the test (which can write the RAM file; the monitor
// cannot). It also dumps memory as LiME.
func TestIntrospection(t *testing.T) {
	h := newHost(t)
	script := `printf '#!/bin/sh\nwhile :; do sleep 3; done\n' >/tmp/bwsleeper; chmod +x /tmp/bwsleeper
/tmp/bwsleeper </dev/null >/dev/null 2>&1 &
echo "bwsleeper-pid $!"`
	h.mustCLI(nil, "vm", "create", "vmi1", "--kernel", filepath.Join(imgDir, "vmlinuz"),
		"--initrd", filepath.Join(imgDir, "initrd.img"), "--memory", "256",
		"--cmdline", "bulwark.hostname=vmi1", "--disk", h.userdata("vmi1", script)+":ro", "--monitor-interval", "2s")
	h.mustCLI(nil, "vm", "start", "vmi1")
	h.waitConsole("vmi1", "bwsleeper-pid", 1)
	m := regexp.MustCompile(`bwsleeper-pid (\d+)`).FindStringSubmatch(h.consoleLog("vmi1"))
	pid, _ := strconv.Atoi(m[1])

	var ps struct {
		Millis float64         `json:"millis"`
		Items  []guest.Process `json:"items"`
	}
	h.mustCLI(&ps, "vmi", "ps", "vmi1")
	var sleeper *guest.Process
	for i, p := range ps.Items {
		if p.Comm == "bwsleeper" {
			sleeper = &ps.Items[i]
		}
	}
	if sleeper == nil || int(sleeper.PID) != pid {
		t.Fatalf("vmi ps does not show bwsleeper with pid %d:\n%+v", pid, ps.Items)
	}
	t.Logf("vmi ps: %d processes in %.1f ms (warm: second call below)", len(ps.Items), ps.Millis)
	h.mustCLI(&ps, "vmi", "ps", "vmi1")
	t.Logf("vmi ps warm: %.1f ms", ps.Millis)
	var info map[string]any
	h.mustCLI(&info, "vmi", "info", "vmi1")
	if rel, _ := info["release"].(string); !strings.Contains(rel, "amd64") || !strings.HasPrefix(fmt.Sprint(info["kernel_offset"]), "0x") {
		t.Fatalf("vmi info: %v", info)
	}

	// A clean guest raises nothing over several scans.
	for i := 0; i < 3; i++ {
		if rep := h.vmiCheck("vmi1"); len(rep.Findings) != 0 {
			t.Fatalf("clean guest, scan %d:\n%s", i, kinds(rep))
		}
	}

	if out, _, _ := h.cli("events", "--vm", "vmi1"); strings.TrimSpace(out) != "" {
		t.Fatalf("events from a clean guest:\n%s", out)
	}

	v := h.vm("vmi1")
	// The simulated rootkit writes guest RAM from the host, through the
	// hypervisor's own descriptor of it (the test runs as root).
	rk := newRootkit(t, fmt.Sprintf("/proc/%d/fd/3", v.Runtime.PID), 256<<20, filepath.Join(imgDir, "vmlinuz"))
	offTasks, _ := rk.k.Off("task_struct.tasks")

	// Periodic scanning (monitor_interval 2s) raises an event by itself.
	acct, err := rk.k.Sym("__x64_sys_acct")
	if err != nil {
		t.Fatal(err)
	}
	var orig2 [1]byte
	rk.k.Read(acct+2, orig2[:])
	rk.write(acct+2, []byte{orig2[0] ^ 0xff})
	h.waitFor("a periodic scan to raise an event", 30*time.Second, func() bool {
		out, _, _ := h.cli("events", "--vm", "vmi1")
		return strings.Contains(out, `"kind":"kernel_text_modified"`) && strings.Contains(out, `"scan":"periodic"`)
	})
	rk.write(acct+2, orig2[:])

	// Hidden module: unlink the first module from the module list; its
	// /sys/module kobject still shows it.
	var mods struct {
		Items []guest.Module `json:"items"`
	}
	h.mustCLI(&mods, "vmi", "modules", "vmi1")
	if len(mods.Items) == 0 {
		t.Fatal("vmi modules lists no modules (the guest loads virtio modules)")
	}
	offList, _ := rk.k.Off("module.list")
	mnode := mods.Items[0].Module + offList
	mnext, mprev := rk.u64(mnode), rk.u64(mnode+8)
	rk.put64(mprev, mnext)
	rk.put64(mnext+8, mprev)
	rep := h.vmiCheck("vmi1")
	if !strings.Contains(kinds(rep), "hidden_module: module "+mods.Items[0].Name+" is in /sys/module") {
		t.Fatalf("hidden module not detected:\n%s", kinds(rep))
	}
	rk.put64(mprev, mnode)
	rk.put64(mnext+8, mnode)

	// DKOM: unlink bwsleeper from the task list.
	node := sleeper.Task + offTasks
	next, prev := rk.u64(node), rk.u64(node+8)
	rk.put64(prev, next)   // prev->next = next
	rk.put64(next+8, prev) // next->prev = prev
	rep = h.vmiCheck("vmi1")
	if !strings.Contains(kinds(rep), fmt.Sprintf("hidden_process: process %d (bwsleeper)", pid)) {
		t.Fatalf("DKOM not detected:\n%s", kinds(rep))
	}
	rk.put64(prev, node) // relink
	rk.put64(next+8, node)

	// Syscall-table hook: getpid (39) made to point at getppid's handler.
	table, _ := rk.k.Sym("sys_call_table")
	orig := rk.u64(table + 39*8)
	rk.put64(table+39*8, rk.u64(table+110*8))
	rep = h.vmiCheck("vmi1")
	if !regexp.MustCompile(`syscall_hook: sys_call_table\[39\] points to __x64_sys_getppid instead of __x64_sys_getpid`).MatchString(kinds(rep)) {
		t.Fatalf("syscall hook not detected:\n%s", kinds(rep))
	}
	rk.put64(table+39*8, orig)

	// Kernel text: one byte of a handler the guest does not call.
	var b [1]byte
	rk.k.Read(acct+1, b[:])
	rk.write(acct+1, []byte{b[0] ^ 0xff})
	rep = h.vmiCheck("vmi1")
	if !strings.Contains(kinds(rep), "kernel_text_modified") || !strings.Contains(kinds(rep), "__x64_sys_acct") {
		t.Fatalf("text patch not detected:\n%s", kinds(rep))
	}
	rk.write(acct+1, b[:])
	if rep := h.vmiCheck("vmi1"); len(rep.Findings) != 0 {
		t.Fatalf("after restoring everything:\n%s", kinds(rep))
	}

	// The findings are events.
	out, _, err := h.cli("events", "--vm", "vmi1")
	if err != nil || !strings.Contains(out, `"kind":"hidden_process"`) || !strings.Contains(out, `"kind":"syscall_hook"`) {
		t.Fatalf("events: %v\n%s", err, out)
	}

	// The monitor runs as its own uid and holds the RAM mapping read-only.
	checkMonitorProcess(t)

	// A LiME dump that a second reader accepts.
	dump := filepath.Join(h.dir, "vmi1.lime")
	if out, errs, err := h.cli("vmi", "dump", "vmi1", "-o", dump); err != nil {
		t.Fatalf("vmi dump: %v %s %s", err, out, errs)
	}
	f, err := os.Open(dump)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	ranges, _, err := lime.Ranges(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	var total uint64
	for _, r := range ranges {
		total += r.Len()
	}
	if total < 250<<20 || total > 256<<20 {
		t.Fatalf("dump holds %d bytes of RAM in %d ranges", total, len(ranges))
	}

	// Once the VM stops, the monitor lets go of its RAM (a mapping would
	// keep the guest's memory alive after the hypervisor is gone).
	memFile := "memfd:bulwark-ram:vmi1"
	if !strings.Contains(monitorMaps(), memFile) {
		t.Fatalf("the monitor does not map %s while the VM runs", memFile)
	}
	h.mustCLI(nil, "vm", "stop", "vmi1", "--force")
	h.waitFor("the monitor to unmap the stopped VM's RAM", 20*time.Second, func() bool {
		return !strings.Contains(monitorMaps(), memFile)
	})
	// A stopped VM and an unknown one get clear refusals.
	if _, errs, err := h.cli("vmi", "ps", "vmi1"); err == nil || !strings.Contains(errs, "not running") {
		t.Fatalf("vmi ps of a stopped VM: %v %q", err, errs)
	}
	if _, errs, err := h.cli("vmi", "check", "nosuchvm"); err == nil || !strings.Contains(errs, "not found") {
		t.Fatalf("vmi check of an unknown VM: %v %q", err, errs)
	}
	if _, errs, err := h.cli("console", "vmi1"); err == nil || !strings.Contains(errs, "is stopped") {
		t.Fatalf("console of a stopped VM: %v %q", err, errs)
	}
}

func monitorMaps() string {
	procs, _ := os.ReadDir("/proc")
	var b strings.Builder
	for _, p := range procs {
		cmd, _ := os.ReadFile("/proc/" + p.Name() + "/cmdline")
		if strings.Contains(string(cmd), "\x00monitor\x00--cache\x00") {
			m, _ := os.ReadFile("/proc/" + p.Name() + "/maps")
			b.Write(m)
		}
	}
	return b.String()
}

// checkMonitorProcess finds `bulwark monitor` and checks its uid and that
// its guest-RAM mappings are not writable.
func checkMonitorProcess(t *testing.T) {
	t.Helper()
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		cmd, _ := os.ReadFile("/proc/" + p.Name() + "/cmdline")
		if !strings.Contains(string(cmd), "\x00monitor\x00--cache\x00") {
			continue
		}
		status, _ := os.ReadFile("/proc/" + p.Name() + "/status")
		if !regexp.MustCompile(`(?m)^Uid:\s+1999999999\s`).Match(status) {
			t.Fatalf("monitor not running as its own uid:\n%s", status)
		}
		maps, _ := os.ReadFile("/proc/" + p.Name() + "/maps")
		for _, l := range strings.Split(string(maps), "\n") {
			if strings.Contains(l, "memfd:bulwark-ram:") {
				if f := strings.Fields(l); len(f) > 1 && strings.Contains(f[1], "w") {
					t.Fatalf("monitor maps guest RAM writable: %s", l)
				}
			}
		}
		return
	}
	t.Fatal("no bulwark monitor process")
}
