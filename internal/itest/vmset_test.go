package itest

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/vm"
)

var resRE = regexp.MustCompile(`res-mem (\d+) res-cpus (\d+)`)

// lastRes returns the guest's last report of MemTotal (KiB) and CPUs.
func lastRes(log string) (memKiB, cpus int) {
	ms := resRE.FindAllStringSubmatch(log, -1)
	if len(ms) == 0 {
		return 0, 0
	}
	m := ms[len(ms)-1]
	memKiB, _ = strconv.Atoi(m[1])
	cpus, _ = strconv.Atoi(m[2])
	return memKiB, cpus
}

type setAnswer struct {
	VM      *vm.VM      `json:"vm"`
	Changes []vm.Change `json:"changes"`
}

// TestVMSetResources: memory and vCPUs changed on a stopped VM are what the
// guest sees after the next start; a running VM refuses them; setting the
// same values again is a no-op that says so.
func TestVMSetResources(t *testing.T) {
	h := newHost(t)
	report := `echo "res-mem $(awk '/MemTotal/ {print $2}' /proc/meminfo) res-cpus $(grep -c ^processor /proc/cpuinfo)"`
	h.mustCLI(nil, "vm", "create", "res", "--kernel", filepath.Join(imgDir, "vmlinuz"),
		"--initrd", filepath.Join(imgDir, "initrd.img"), "--memory", "160", "--vcpus", "1",
		"--cmdline", "bulwark.hostname=res", "--disk", h.userdata("res", report)+":ro")
	h.mustCLI(nil, "vm", "start", "res")
	h.waitConsole("res", "res-mem ", 1)
	mem1, cpus1 := lastRes(h.consoleLog("res"))
	if cpus1 != 1 || mem1 == 0 || mem1 > 160*1024 {
		t.Fatalf("first boot: MemTotal %d KiB, %d CPUs; want <= 160 MiB and 1", mem1, cpus1)
	}

	// Running: refused, naming the state; nothing changes.
	_, stderr, err := h.cli("vm", "set", "res", "--memory", "320")
	if err == nil || !strings.Contains(stderr, "running") {
		t.Errorf("vm set --memory on a running VM: %v %q, want a refusal naming the state", err, stderr)
	}
	if v := h.vm("res"); v.Spec.MemoryMiB != 160 {
		t.Errorf("memory %d MiB after a refused change", v.Spec.MemoryMiB)
	}

	h.mustCLI(nil, "vm", "stop", "res")
	var ans setAnswer
	h.mustCLI(&ans, "vm", "set", "res", "--memory", "320", "--vcpus", "2")
	want := []vm.Change{{Field: "vcpus", Old: "1", New: "2"}, {Field: "memory_mib", Old: "160", New: "320"}}
	if !slices.Equal(ans.Changes, want) {
		t.Errorf("changes %v, want %v", ans.Changes, want)
	}
	out, _, err := h.cli("vm", "set", "res", "--memory", "320")
	if err != nil || !strings.Contains(out, "no change") {
		t.Errorf("the same memory again: %v %q, want 'no change'", err, out)
	}
	out, _, err = h.cli("vm", "set", "res", "--cmdline", "bulwark.hostname=res quiet")
	if err != nil || !strings.Contains(out, "cmdline") || !strings.Contains(out, "→") {
		t.Errorf("table output of a change: %v %q", err, out)
	}

	h.mustCLI(nil, "vm", "start", "res")
	h.waitConsole("res", "res-mem ", 2)
	mem2, cpus2 := lastRes(h.consoleLog("res"))
	t.Logf("guest MemTotal %d KiB, %d CPU(s) before; %d KiB, %d CPU(s) after vm set", mem1, cpus1, mem2, cpus2)
	if cpus2 != 2 || mem2 <= 160*1024 || mem2 > 320*1024 {
		t.Errorf("after vm set: MemTotal %d KiB (was %d), %d CPUs; want between 160 and 320 MiB and 2", mem2, mem1, cpus2)
	}

	// The audit trail has the change as a diff.
	var recs []map[string]any
	h.mustCLI(&recs, "audit", "list", "--object", "/vms/res")
	found := false
	for _, r := range recs {
		if r["action"] == "updateVM" && strings.Contains(fmt.Sprint(r["detail"]), "memory_mib: 160 → 320") {
			found = true
		}
	}
	if !found {
		t.Errorf("no audit record with the memory change: %v", recs)
	}
}

// TestVMSetLiveGroups: moving a running VM's NIC into a security group
// opens what the group's rules allow at once, moving it out closes it
// again, without a restart.
func TestVMSetLiveGroups(t *testing.T) {
	h := newHost(t)
	h.mustCLI(nil, "network", "create", "lab", "--subnet", "10.40.0.0/24")
	for _, g := range []string{"app", "db", "other"} {
		h.mustCLI(nil, "sg", "create", g)
	}
	h.mustCLI(nil, "sg", "rule", "add", "db", "--id", "pg", "--direction", "ingress", "--action", "allow",
		"--protocol", "tcp", "--port", "5432", "--remote-group", "app")
	h.netVM("srv", "network=lab,ip=10.40.0.21,group=db,mac=52:54:00:40:00:21", "nc -ll -p 5432 -e /bin/echo hi &\n")
	h.netVM("cli", "network=lab,ip=10.40.0.11,group=other,mac=52:54:00:40:00:11",
		probe("cli-db", "nc -w 2 10.40.0.21 5432 </dev/null"))
	h.mustCLI(nil, "vm", "start", "srv")
	h.mustCLI(nil, "vm", "start", "cli")
	h.expectProbe("cli", "cli-db", "fail")

	var ans setAnswer
	h.mustCLI(&ans, "vm", "set", "cli", "--nic-groups", "0=app")
	if ans.VM == nil || ans.VM.State != vm.Running || len(ans.Changes) != 1 || ans.Changes[0].Field != "nics[0].groups" {
		t.Fatalf("live group change: %+v", ans)
	}
	portGroups := func() []string {
		for _, p := range h.ports() {
			if p.Name == "cli/nic0" {
				return p.Groups
			}
		}
		return nil
	}
	if g := portGroups(); !slices.Equal(g, []string{"app"}) {
		t.Errorf("port groups %v, want [app]", g)
	}
	h.expectProbe("cli", "cli-db", "ok")

	h.mustCLI(nil, "vm", "set", "cli", "--nic-groups", "0=other")
	h.expectProbe("cli", "cli-db", "fail")
	if g := portGroups(); !slices.Equal(g, []string{"other"}) {
		t.Errorf("port groups %v, want [other]", g)
	}
	// A group that does not exist: refused, the port keeps its groups.
	if _, stderr, err := h.cli("vm", "set", "cli", "--nic-groups", "0=nope"); err == nil || !strings.Contains(stderr, "nope") {
		t.Errorf("unknown group: %v %q", err, stderr)
	}
	var v vm.VM
	h.mustCLI(&v, "vm", "show", "cli")
	b, _ := json.Marshal(v.Spec.NICs)
	if !slices.Equal(v.Spec.NICs[0].Groups, []string{"other"}) {
		t.Errorf("stored NICs %s", b)
	}
}
