package qemu

import (
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/vm"
)

// No limit: no group, no filter node, devices on the disks' own nodes.
func TestBuildNoDiskLimits(t *testing.T) {
	argv := testArgs().Build()
	for _, a := range argv {
		if strings.Contains(a, "throttle") || strings.Contains(a, "tg0") {
			t.Errorf("argument %q without disk limits", a)
		}
	}
	if got := values(argv, "-object"); len(got) != 1 || !strings.HasPrefix(got[0], "memory-backend-file,") {
		t.Errorf("-object %q, want only the memory backend", got)
	}
}

func TestBuildDiskLimits(t *testing.T) {
	a := testArgs()
	a.DiskLimits = ThrottleLimits{ReadBPS: 2 << 20, WriteIOPS: 100}
	a.Disks = []DiskArg{
		{Path: "/dev/fdset/1"},
		{Path: "/dev/fdset/3", Format: "qcow2", Backing: []DiskLayer{{Path: "/dev/fdset/2", Format: "raw"}}},
		{Path: "/dev/fdset/4", ReadOnly: true},
	}
	argv := a.Build()
	objs := values(argv, "-object")
	want := `{"qom-type":"throttle-group","id":"tg0","limits":{"bps-read":2097152,"bps-write":0,"iops-read":0,"iops-write":100}}`
	if len(objs) != 2 || objs[1] != want {
		t.Errorf("-object %q, want the memory backend and %s", objs, want)
	}
	wantBlock := []string{
		"driver=file,node-name=disk0f,filename=/dev/fdset/1,read-only=off",
		"driver=raw,node-name=disk0,file=disk0f,read-only=off",
		"driver=throttle,node-name=disk0t,throttle-group=tg0,file=disk0,read-only=off",
		"driver=file,node-name=disk1b0f,filename=/dev/fdset/2,read-only=on",
		"driver=raw,node-name=disk1b0,file=disk1b0f,read-only=on",
		"driver=file,node-name=disk1f,filename=/dev/fdset/3,read-only=off",
		`{"driver":"qcow2","node-name":"disk1","file":"disk1f","read-only":false,"backing":"disk1b0"}`,
		"driver=throttle,node-name=disk1t,throttle-group=tg0,file=disk1,read-only=off",
		"driver=file,node-name=disk2f,filename=/dev/fdset/4,read-only=on",
		"driver=raw,node-name=disk2,file=disk2f,read-only=on",
		"driver=throttle,node-name=disk2t,throttle-group=tg0,file=disk2,read-only=on",
	}
	if got := values(argv, "-blockdev"); !slices.Equal(got, wantBlock) {
		t.Errorf("-blockdev\n got %q\nwant %q", got, wantBlock)
	}
	var blk []string
	for _, d := range values(argv, "-device") {
		if strings.HasPrefix(d, "virtio-blk-device,") {
			blk = append(blk, d)
		}
	}
	wantDev := []string{"virtio-blk-device,drive=disk0t", "virtio-blk-device,drive=disk1t", "virtio-blk-device,drive=disk2t"}
	if !slices.Equal(blk, wantDev) {
		t.Errorf("block devices %q, want %q", blk, wantDev)
	}
	// The group exists before the first filter names it.
	if i, j := slices.Index(argv, "-object"), slices.Index(argv, "-blockdev"); i > j {
		t.Errorf("-object at %d after -blockdev at %d", i, j)
	}
}

func TestDiskLimitsOf(t *testing.T) {
	l, err := DiskLimitsOf(vm.DiskResources{Shares: "high", ReadBPS: 1, WriteBPS: vm.MaxBPS, ReadIOPS: 3, WriteIOPS: vm.MaxIOPS})
	if err != nil || l != (ThrottleLimits{1, vm.MaxBPS, 3, vm.MaxIOPS}) {
		t.Errorf("DiskLimitsOf = %+v, %v", l, err)
	}
	if l, err := DiskLimitsOf(vm.DiskResources{Shares: "low"}); err != nil || !l.IsZero() {
		t.Errorf("shares only: %+v, %v; want no limit", l, err)
	}
	for _, d := range []vm.DiskResources{{ReadBPS: -1}, {WriteBPS: vm.MaxBPS + 1}, {ReadIOPS: -5}, {WriteIOPS: vm.MaxIOPS + 1}} {
		if _, err := DiskLimitsOf(d); err == nil || !strings.Contains(err.Error(), "out of range") {
			t.Errorf("DiskLimitsOf(%+v) = %v, want out of range", d, err)
		}
	}
}

func TestDiskOfThrottle(t *testing.T) {
	for node, want := range map[string]int{"disk0t": 0, "disk7t": 7} {
		if i, ok := diskOfThrottle(node); !ok || i != want {
			t.Errorf("%s: %d %v, want %d", node, i, ok, want)
		}
	}
	for _, node := range []string{"disk0", "disk0f", "disk0s1t", "disk01t", "diskt", "t", "disk0tt", "net0t"} {
		if i, ok := diskOfThrottle(node); ok {
			t.Errorf("%s parsed as throttle of disk %d", node, i)
		}
	}
}

// expect reads one command and checks its name and arguments (as JSON,
// compared after re-encoding so key order does not matter).
func (f *fakeQEMU) expect(cmd, args string) bool {
	got, raw, err := f.request()
	if err != nil {
		f.t.Errorf("want %s, read: %v", cmd, err)
		return false
	}
	if got != cmd || !sameJSON(raw, args) {
		f.t.Errorf("got %s %s, want %s %s", got, raw, cmd, args)
		return false
	}
	return true
}

func sameJSON(a json.RawMessage, b string) bool {
	if len(a) == 0 || b == "" {
		return len(a) == 0 && b == ""
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	p, _ := json.Marshal(x)
	q, _ := json.Marshal(y)
	return string(p) == string(q)
}

func fakeInstance(t *testing.T, script func(f *fakeQEMU)) *instance {
	path, _ := serveQMP(t, func(f *fakeQEMU) {
		if f.handshake() {
			script(f)
		}
	})
	return &instance{qmp: dial(t, path), done: make(chan struct{})}
}

// A VM started with limits: one qom-set on the group, every field sent.
func TestSetDiskLimitsGroup(t *testing.T) {
	in := fakeInstance(t, func(f *fakeQEMU) {
		if f.expect("qom-set", `{"path":"/objects/tg0","property":"limits","value":{"bps-read":0,"bps-write":4096,"iops-read":10,"iops-write":0}}`) {
			f.send(`{"return": {}}`)
		}
		if f.expect("qom-set", `{"path":"/objects/tg0","property":"limits","value":{"bps-read":0,"bps-write":0,"iops-read":0,"iops-write":0}}`) {
			f.send(`{"error": {"class": "GenericError", "desc": "bps/iops/max values must be within [0, 1000000000000000]"}}`)
		}
		f.request()
	})
	ctx := ctxTimeout(t, 5*time.Second)
	if err := in.SetDiskLimits(ctx, vm.DiskResources{Shares: "high", WriteBPS: 4096, ReadIOPS: 10}); err != nil {
		t.Fatal(err)
	}
	// Any refusal other than "no such group" is returned as it is: no
	// fallback that could leave two throttles stacked.
	err := in.SetDiskLimits(ctx, vm.DiskResources{})
	var qe *QMPError
	if !errors.As(err, &qe) || qe.Class != "GenericError" || !strings.Contains(err.Error(), "disk limits") {
		t.Errorf("refused qom-set: %v", err)
	}
	if err := in.SetDiskLimits(ctx, vm.DiskResources{ReadBPS: -1}); err == nil {
		t.Error("a negative limit reached QEMU")
	}
}

// A VM started without limits: each device with a medium gets its own
// throttle in group tg0; if one refuses, the ones changed go back.
func TestSetDiskLimitsDevices(t *testing.T) {
	const blocks = `{"return": [
		{"device": "", "qdev": "/machine/peripheral-anon/device[0]", "inserted": {"node-name": "disk0", "bps_rd": 0, "bps_wr": 0, "iops_rd": 0, "iops_wr": 0}},
		{"device": "", "qdev": "/machine/peripheral-anon/device[1]"},
		{"device": "", "qdev": "/machine/peripheral-anon/device[2]", "inserted": {"node-name": "disk1", "bps_rd": 0, "bps_wr": 0, "iops_rd": 7, "iops_wr": 0}}]}`
	set := func(dev int, rd, ird int) string {
		return `{"id":"/machine/peripheral-anon/device[` + itoa(dev) + `]","group":"tg0","bps":0,"bps_rd":` +
			itoa(rd) + `,"bps_wr":0,"iops":0,"iops_rd":` + itoa(ird) + `,"iops_wr":0}`
	}
	in := fakeInstance(t, func(f *fakeQEMU) {
		for round := 0; round < 2; round++ {
			if !f.expect("qom-set", `{"path":"/objects/tg0","property":"limits","value":{"bps-read":1000,"bps-write":0,"iops-read":0,"iops-write":0}}`) {
				return
			}
			f.send(`{"error": {"class": "DeviceNotFound", "desc": "Device '/objects/tg0' not found"}}`)
			if !f.expect("query-block", "") {
				return
			}
			f.send(oneLine(blocks))
			if !f.expect("block_set_io_throttle", set(0, 1000, 0)) {
				return
			}
			f.send(`{"return": {}}`)
			if !f.expect("block_set_io_throttle", set(2, 1000, 0)) {
				return
			}
			if round == 0 {
				f.send(`{"return": {}}`)
				continue
			}
			f.send(`{"error": {"class": "GenericError", "desc": "no"}}`)
			// Undo: device 0 gets what query-block reported for it.
			if f.expect("block_set_io_throttle", set(0, 0, 0)) {
				f.send(`{"return": {}}`)
			}
		}
		f.request()
	})
	ctx := ctxTimeout(t, 5*time.Second)
	if err := in.SetDiskLimits(ctx, vm.DiskResources{ReadBPS: 1000}); err != nil {
		t.Fatal(err)
	}
	err := in.SetDiskLimits(ctx, vm.DiskResources{ReadBPS: 1000})
	if err == nil || !strings.Contains(err.Error(), "device 1 (node disk1)") {
		t.Errorf("refusal on the second device: %v", err)
	}
}

// A QEMU answering with more devices than a VM can have is refused before
// anything changes.
func TestSetDiskLimitsTooManyDevices(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"return": [`)
	for i := 0; i <= maxBlockDevices; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`{"qdev": "d` + itoa(i) + `", "inserted": {"node-name": "disk` + itoa(i) + `"}}`)
	}
	b.WriteString("]}")
	in := fakeInstance(t, func(f *fakeQEMU) {
		f.request()
		f.send(`{"error": {"class": "DeviceNotFound", "desc": "x"}}`)
		f.request()
		f.send(b.String())
		if cmd, _, err := f.request(); err == nil {
			t.Errorf("command %s after an oversized device list", cmd)
		}
	})
	err := in.SetDiskLimits(ctxTimeout(t, 5*time.Second), vm.DiskResources{ReadIOPS: 5})
	if err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("got %v", err)
	}
	in.qmp.Close()
}

// topNodes looks under a device's throttle filter: the deepest format
// node of the disk is the top of its chain; file nodes do not count.
func TestTopNodesThrottled(t *testing.T) {
	in := fakeInstance(t, func(f *fakeQEMU) {
		if !f.expect("query-block", "") {
			return
		}
		f.send(`{"return": [{"qdev": "a", "inserted": {"node-name": "disk0t"}}, {"qdev": "b", "inserted": {"node-name": "disk1"}}]}`)
		if !f.expect("query-named-block-nodes", `{"flat":false}`) {
			return
		}
		f.send(oneLine(`{"return": [
			{"node-name": "disk0s1a", "drv": "qcow2", "backing_file_depth": 1},
			{"node-name": "disk0s1af", "drv": "file", "backing_file_depth": 0},
			{"node-name": "disk0t", "drv": "throttle", "backing_file_depth": 2},
			{"node-name": "disk0", "drv": "raw", "backing_file_depth": 0},
			{"node-name": "disk0f", "drv": "file", "backing_file_depth": 0},
			{"node-name": "disk1", "drv": "raw", "backing_file_depth": 0}]}`))
		f.request()
	})
	got, err := in.topNodes(ctxTimeout(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != "disk0s1a" || got[1] != "disk1" || len(got) != 2 {
		t.Errorf("topNodes = %v, want disk0s1a under the filter and disk1", got)
	}
}

// oneLine joins a reply written over several lines: QMP is one message a
// line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func itoa(i int) string { return strconv.Itoa(i) }

// FuzzDiskOfThrottle: a name the hypervisor reports parses as a throttle
// node only if it is exactly the name throttleNode gives that disk.
func FuzzDiskOfThrottle(f *testing.F) {
	for _, s := range []string{"disk0t", "disk12t", "disk0s1t", "disk01t", "diskt", "disk0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, node string) {
		if i, ok := diskOfThrottle(node); ok && (i < 0 || throttleNode(i) != node) {
			t.Errorf("%q parsed as disk %d", node, i)
		}
	})
}
