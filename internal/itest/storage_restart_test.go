package itest

import (
	"context"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/storage"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// TestStorageDaemonRestart: a busybox guest on a qcow2 overlay volume (a
// clone of a base, with a second clone beside it) writes a marker and
// keeps writing a counter; a stopped and a live snapshot are taken; the
// daemon is killed (-9) and restarted. The VM is re-attached and its
// writes go on; every volume record and every snapshot record (with its
// digests) is as before; after a stop both snapshots verify, and the
// next boot reads the marker and a counter at least as high as the last
// one the guest reported.
func TestStorageDaemonRestart(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	h.mustCLI(nil, "volume", "create", "base", "--size", "8M")
	h.mustCLI(nil, "volume", "clone", "base", "data")
	h.mustCLI(nil, "volume", "clone", "base", "other")
	ud := h.userdata("keep", `printf 'MARK-A' | dd of=/dev/vda conv=notrunc 2>/dev/null; sync; echo "boot1=$(head -c 6 /dev/vda)"`)
	spec := vm.Spec{Name: "keep", MemoryMiB: 192, Kernel: filepath.Join(imgDir, "vmlinuz"), Initrd: filepath.Join(imgDir, "initrd.img"),
		Cmdline: "bulwark.hostname=keep", Disks: []vm.Disk{{Volume: "default/data"}, {Path: ud, ReadOnly: true}}}
	if _, err := h.c.CreateVM(ctx, spec); err != nil {
		t.Fatal(err)
	}
	value := func(name, key string) string {
		t.Helper()
		h.waitConsole(name, key+"=", 1)
		log := h.consoleLog(name)
		i := strings.LastIndex(log, key+"=")
		return strings.TrimRight(strings.SplitN(log[i+len(key)+1:], "\n", 2)[0], "\r\x00")
	}
	h.mustCLI(nil, "vm", "start", "keep")
	if got := value("keep", "boot1"); got != "MARK-A" {
		t.Fatalf("boot 1 read %q", got)
	}
	h.mustCLI(nil, "vm", "stop", "keep")
	h.mustCLI(nil, "vm", "snapshot", "create", "keep", "s1")

	// Boot 2: marker B over A, then a counter at 4096 written and synced
	// every second (each "tick=N" is printed after N is on the disk).
	h.userdata("keep", `printf 'MARK-B' | dd of=/dev/vda conv=notrunc 2>/dev/null; sync; echo "wrote2=$(head -c 6 /dev/vda)"
i=0; while :; do i=$((i+1)); printf 'TICK%07d' $i | dd of=/dev/vda bs=1 seek=4096 conv=notrunc 2>/dev/null; sync; echo "tick=$i"; sleep 1; done &`)
	h.mustCLI(nil, "vm", "start", "keep")
	if got := value("keep", "wrote2"); got != "MARK-B" {
		t.Fatalf("boot 2 wrote %q", got)
	}
	h.waitFor("tick 2", 60*time.Second, func() bool { return lastCount(h.consoleLog("keep")) >= 2 })
	h.mustCLI(nil, "vm", "snapshot", "create", "keep", "s2") // live: the guest keeps writing to the new top
	t2 := lastCount(h.consoleLog("keep"))
	h.waitFor("ticks after the live snapshot", 60*time.Second, func() bool { return lastCount(h.consoleLog("keep")) >= t2+2 })

	records := func() (vols, snaps string) {
		t.Helper()
		var vl []storage.Volume
		var sl []storage.Snapshot
		h.mustCLI(&vl, "volume", "list")
		h.mustCLI(&sl, "vm", "snapshot", "list", "keep")
		bv, _ := json.Marshal(vl)
		bs, _ := json.Marshal(sl)
		return string(bv), string(bs)
	}
	vols, snaps := records()
	for _, want := range []string{`"name":"base"`, `"name":"data"`, `"name":"other"`, `"name":"data-snap-s1"`, `"name":"data-snap-s2"`} {
		if !strings.Contains(vols, want) {
			t.Fatalf("before the restart, volume list lacks %s: %s", want, vols)
		}
	}
	pid := h.vm("keep").Runtime.PID

	h.kill()
	h.startDaemon()

	if v := h.vm("keep"); v.State != vm.Running || v.Runtime.PID != pid {
		t.Fatalf("after kill -9 + restart: %s pid %d, want running pid %d", v.State, v.Runtime.PID, pid)
	}
	tk := lastCount(h.consoleLog("keep"))
	h.waitFor("ticks after the re-attach", 60*time.Second, func() bool { return lastCount(h.consoleLog("keep")) >= tk+2 })
	if v2, s2 := records(); v2 != vols || s2 != snaps {
		t.Fatalf("records changed across the restart:\nvolumes before %s\nvolumes after  %s\nsnapshots before %s\nsnapshots after  %s", vols, v2, snaps, s2)
	}

	h.mustCLI(nil, "vm", "stop", "keep")
	last := lastCount(h.consoleLog("keep"))
	var recorded []storage.Snapshot
	json.Unmarshal([]byte(snaps), &recorded)
	for _, sn := range recorded {
		var rep storage.VerifyReport
		h.mustCLI(&rep, "vm", "snapshot", "verify", "keep", sn.Name)
		if !rep.OK || len(rep.Layers) != len(sn.Disks[0].Layers) {
			t.Fatalf("verify %s after the restart: %+v", sn.Name, rep)
		}
		for i, l := range rep.Layers {
			if l != sn.Disks[0].Layers[i] {
				t.Errorf("snapshot %s layer %d: %+v, recorded %+v", sn.Name, i, l, sn.Disks[0].Layers[i])
			}
		}
	}

	// A new hypervisor reads what the old one wrote, through the chain
	// the restarted daemon opened.
	h.userdata("keep", `echo "boot3=$(head -c 6 /dev/vda) count=$(dd if=/dev/vda bs=1 skip=4096 count=11 2>/dev/null)"`)
	h.mustCLI(nil, "vm", "start", "keep")
	got := value("keep", "boot3")
	n, err := strconv.Atoi(strings.TrimPrefix(strings.TrimPrefix(got, "MARK-B count="), "TICK"))
	if !strings.HasPrefix(got, "MARK-B count=TICK") || err != nil || n < last {
		t.Fatalf("boot 3 read %q; want MARK-B and a counter of at least %d (the last the guest reported)", got, last)
	}
	t.Logf("guest's last reported tick %d (%d at the re-attach), read back %d", last, tk, n)
	h.mustCLI(nil, "vm", "stop", "keep")
}

var countRE = regexp.MustCompile(`tick=(\d+)`)

// lastTick returns the highest counter a guest reported as written.
func lastCount(log string) int {
	n := 0
	for _, m := range countRE.FindAllStringSubmatch(log, -1) {
		if k, _ := strconv.Atoi(m[1]); k > n {
			n = k
		}
	}
	return n
}
