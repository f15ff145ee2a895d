package itest

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/vmi/guest"
)

type hiddenReport struct {
	Millis   float64 `json:"millis"`
	Findings []struct {
		Kind     string         `json:"kind"`
		Summary  string         `json:"summary"`
		Evidence map[string]any `json:"evidence"`
	} `json:"findings"`
	Scanned map[string]int `json:"scanned"`
}

// taskFindings lists the hidden_task findings and the scan errors of the
// task views of a report.
func taskFindings(r hiddenReport) (hidden, errs []string) {
	for _, f := range r.Findings {
		switch {
		case f.Kind == "hidden_task":
			hidden = append(hidden, f.Summary)
		case f.Kind == "scan_error" && (strings.Contains(f.Summary, "view of tasks") || strings.Contains(f.Summary, "hidden tasks")):
			errs = append(errs, f.Summary)
		}
	}
	return hidden, errs
}

// TestHiddenTask: a process unlinked from the task list, its parent's
// children list and the PID table (as a rootkit would, by writing guest
// memory) is still found: a busy one on its CPU's run queue, a sleeping
// one in the task_struct slab. A clean guest with processes starting and
// exiting all the time gives no hidden_task over several checks.
func TestHiddenTask(t *testing.T) {
	h := newHost(t)
	// The spinner waits before it spins: the monitor's first attach
	// verifies VMCOREINFO through vCPU 0's CR3, and a vCPU busy in user
	// mode holds the process's PTI page table, which fails that check.
	script := `printf '#!/bin/sh\nwhile :; do :; done\n' >/tmp/bwspin; chmod +x /tmp/bwspin
printf '#!/bin/sh\nwhile :; do sleep 1; done\n' >/tmp/bwnap; chmod +x /tmp/bwnap
printf '#!/bin/sh\nwhile :; do /bin/true; (sleep 0.1 &); ls /proc >/dev/null; sleep 0.05; done\n' >/tmp/bwchurn; chmod +x /tmp/bwchurn
/tmp/bwspin </dev/null >/dev/null 2>&1 &
echo "bwspin-pid $!"
/tmp/bwnap </dev/null >/dev/null 2>&1 &
echo "bwnap-pid $!"
/tmp/bwchurn </dev/null >/dev/null 2>&1 &
/tmp/bwchurn </dev/null >/dev/null 2>&1 &
echo "bwchurn-started"`
	h.mustCLI(nil, "vm", "create", "vmh", "--kernel", filepath.Join(imgDir, "vmlinuz"),
		"--initrd", filepath.Join(imgDir, "initrd.img"), "--memory", "256",
		"--cmdline", "bulwark.hostname=vmh", "--disk", h.userdata("vmh", script)+":ro")
	h.mustCLI(nil, "vm", "start", "vmh")
	h.waitConsole("vmh", "bwchurn-started", 1)
	pidOf := func(name string) int {
		m := regexp.MustCompile(name + `-pid (\d+)`).FindStringSubmatch(h.consoleLog("vmh"))
		if m == nil {
			t.Fatalf("no %s pid on the console", name)
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	spinPID, napPID := pidOf("bwspin"), pidOf("bwnap")

	check := func() hiddenReport {
		t.Helper()
		// vmi check exits 1 when any part of it could not run; only
		// the task views' own errors matter here (taskFindings).
		out, errs, err := h.cli("vmi", "check", "vmh", "-o", "json")
		var rep hiddenReport
		if jerr := json.Unmarshal([]byte(out), &rep); jerr != nil {
			t.Fatalf("vmi check: %v %v\n%s\n%s", err, jerr, out, errs)
		}
		for _, f := range rep.Findings {
			if f.Kind == "scan_error" {
				t.Logf("vmi check: %s", f.Summary)
			}
		}
		return rep
	}
	// The clean guest under churn: no hidden task, no failing view.
	var millis []float64
	for i := 0; i < 6; i++ {
		rep := check()
		if hidden, errs := taskFindings(rep); len(hidden)+len(errs) != 0 {
			t.Fatalf("clean guest, check %d:\n%s", i, strings.Join(append(hidden, errs...), "\n"))
		}
		if rep.Scanned["runqueue_tasks"] == 0 || rep.Scanned["slab_candidates"] == 0 || rep.Scanned["vcpu_current_tasks"] == 0 {
			t.Fatalf("a view saw nothing: %v", rep.Scanned)
		}
		if i > 0 { // the first check attaches and takes the baseline
			millis = append(millis, rep.Millis)
		}
		t.Logf("check %d: %.1f ms; %v", i, rep.Millis, rep.Scanned)
	}
	sort.Float64s(millis)
	t.Logf("warm full check: median %.1f ms (min %.1f, max %.1f)", millis[len(millis)/2], millis[0], millis[len(millis)-1])

	var ps struct {
		Items []guest.Process `json:"items"`
	}
	h.mustCLI(&ps, "vmi", "ps", "vmh")
	taskOf := func(pid int) uint64 {
		for _, p := range ps.Items {
			if int(p.PID) == pid {
				return p.Task
			}
		}
		t.Fatalf("vmi ps does not list pid %d", pid)
		return 0
	}
	v := h.vm("vmh")
	rk := newRootkit(t, fmt.Sprintf("/proc/%d/fd/3", v.Runtime.PID), 256<<20, filepath.Join(imgDir, "vmlinuz"))

	for _, c := range []struct {
		name string
		pid  int
		view string
	}{{"bwspin", spinPID, "runqueue"}, {"bwnap", napPID, "slab"}} {
		hideTask(rk, taskOf(c.pid))
		var pids []guest.Process
		h.mustCLI(&struct {
			Items *[]guest.Process `json:"items"`
		}{&pids}, "vmi", "pids", "vmh")
		for _, p := range pids {
			if int(p.PID) == c.pid {
				t.Fatalf("%s is still in the PID table after hiding", c.name)
			}
		}
		// A few checks at most: the view must see the task, but a scan
		// may land while the busy loop is briefly off its run queue.
		want := regexp.MustCompile(fmt.Sprintf(`^task %d \(%s\) is seen by [a-z_, ]*%s`, c.pid, c.name, c.view))
		var rep hiddenReport
		var hidden, errs []string
		found := false
		for try := 0; try < 5 && !found; try++ {
			rep = check()
			hidden, errs = taskFindings(rep)
			for _, s := range hidden {
				found = found || want.MatchString(s)
			}
		}
		if !found || len(errs) != 0 {
			t.Fatalf("%s hidden from both lists: want a hidden_task via %s:\n%s", c.name, c.view, strings.Join(append(hidden, errs...), "\n"))
		}
		for _, f := range rep.Findings {
			if f.Kind == "hidden_process" {
				t.Fatalf("a task missing from the PID table too is not hidden_process: %s", f.Summary)
			}
		}
		t.Logf("%s: %s (%.1f ms)", c.name, strings.Join(hidden, "; "), rep.Millis)
	}
}

// hideTask does what a DKOM rootkit does: unlink the task from the task
// list and from its parent's children list, and clear its struct pid's
// slot in the PID namespace's IDR, so neither view reaches it; the task
// itself runs on.
func hideTask(rk *rootkit, task uint64) {
	t := rk.t
	t.Helper()
	off := func(p string) uint64 {
		o, err := rk.k.Off(p)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	for _, l := range []string{"task_struct.tasks", "task_struct.sibling"} {
		node := task + off(l)
		next, prev := rk.u64(node), rk.u64(node+8)
		rk.put64(prev, next)
		rk.put64(next+8, prev)
	}
	pid := rk.u64(task + off("task_struct.thread_pid"))
	ns, err := rk.k.Sym("init_pid_ns")
	if err != nil {
		t.Fatal(err)
	}
	head := ns + off("pid_namespace.idr") + off("idr.idr_rt") + off("xarray.xa_head")
	slot := findSlot(rk, head, pid, 0, off("xa_node.slots"))
	if slot == 0 {
		t.Fatalf("struct pid %#x is not in the IDR", pid)
	}
	rk.put64(slot, 0)
}

// findSlot returns the address of the xarray slot (at slotAddr or below)
// that holds entry.
func findSlot(rk *rootkit, slotAddr, entry uint64, depth int, slotsOff uint64) uint64 {
	v := rk.u64(slotAddr)
	if v == entry {
		return slotAddr
	}
	if v&3 != 2 || v < 4096 || depth > 8 {
		return 0
	}
	node := v &^ 3
	for i := uint64(0); i < 64; i++ {
		if a := findSlot(rk, node+slotsOff+8*i, entry, depth+1, slotsOff); a != 0 {
			return a
		}
	}
	return 0
}
