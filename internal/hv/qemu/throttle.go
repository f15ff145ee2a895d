package qemu

// Disk bandwidth and IOPS limits. A VM has one budget for all its disks:
// one QEMU throttle group (an -object, id tg0) and, on top of every disk,
// a throttle filter node in that group to which the guest's device is
// attached. QEMU counts each guest request when the device submits it, so
// the limit is exact whatever the host's storage is (no device numbers, no
// page-cache writeback escaping, as cgroup v1 blkio throttling has). Disk
// shares stay with the VM's cgroup (io.weight / blkio.weight).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/bulwark-project/bulwark/internal/vm"
)

// throttleGroup is the id of a VM's one throttle group; QEMU ids are the
// daemon's, never the guest's.
const throttleGroup = "tg0"

// maxBlockDevices bounds how many block devices of a QEMU reply are acted
// on (a subverted QEMU may answer with any list): a VM has at most
// vm.MaxDisks.
const maxBlockDevices = vm.MaxDisks

// ThrottleLimits is the part of QEMU's ThrottleLimits (qapi/block-core.json)
// that Bulwark sets, as the throttle group's "limits" property: bytes and
// requests per second, 0 for none. No burst (*-max) is set: QEMU then lets
// the group run ahead of its rate by a tenth of a second's worth at most
// (its bucket holds avg/10 when max is 0), so over any window of a second
// or more the rate is the limit. Every field is always sent, so that a
// change to 0 clears a limit set before. iops-size stays 0: every request
// counts as one operation whatever its size.
type ThrottleLimits struct {
	ReadBPS   int64 `json:"bps-read"`
	WriteBPS  int64 `json:"bps-write"`
	ReadIOPS  int64 `json:"iops-read"`
	WriteIOPS int64 `json:"iops-write"`
}

// IsZero reports that no limit is set.
func (l ThrottleLimits) IsZero() bool { return l == ThrottleLimits{} }

// DiskLimitsOf takes a VM's disk limits, refusing a negative or absurd
// value (vm.MaxBPS, vm.MaxIOPS; QEMU's own ceiling is 10^15) rather than
// letting QEMU fail at start. Shares are not the hypervisor's business.
func DiskLimitsOf(d vm.DiskResources) (ThrottleLimits, error) {
	for _, c := range []struct {
		name   string
		v, max int64
	}{
		{"read_bytes_per_sec", d.ReadBPS, vm.MaxBPS},
		{"write_bytes_per_sec", d.WriteBPS, vm.MaxBPS},
		{"read_iops", d.ReadIOPS, vm.MaxIOPS},
		{"write_iops", d.WriteIOPS, vm.MaxIOPS},
	} {
		if c.v < 0 || c.v > c.max {
			return ThrottleLimits{}, fmt.Errorf("disk limit %s: %d is out of range 0..%d", c.name, c.v, c.max)
		}
	}
	return ThrottleLimits{ReadBPS: d.ReadBPS, WriteBPS: d.WriteBPS, ReadIOPS: d.ReadIOPS, WriteIOPS: d.WriteIOPS}, nil
}

// throttleGroupObject is the -object option of the group, in JSON: the
// "limits" property is a struct (the stable interface, the same one
// qom-set changes later), which the key=value syntax cannot express.
func throttleGroupObject(l ThrottleLimits) string {
	j, _ := json.Marshal(struct {
		Type   string         `json:"qom-type"`
		ID     string         `json:"id"`
		Limits ThrottleLimits `json:"limits"`
	}{"throttle-group", throttleGroup, l})
	return string(j)
}

// throttleNode names disk i's filter node.
func throttleNode(i int) string { return fmt.Sprintf("disk%dt", i) }

// diskOfThrottle parses a name throttleNode made.
func diskOfThrottle(node string) (int, bool) {
	rest, ok := strings.CutSuffix(node, "t")
	if !ok {
		return 0, false
	}
	i, ok := diskOfNode(rest)
	if !ok || rest != "disk"+strconv.Itoa(i) {
		return 0, false
	}
	return i, true
}

// throttleBlockdev is the -blockdev of a filter node over child; it is
// read-only when the disk is (a writable filter cannot sit on a
// read-only node).
func throttleBlockdev(node, child string, readOnly bool) string {
	ro := "off"
	if readOnly {
		ro = "on"
	}
	return fmt.Sprintf("driver=throttle,node-name=%s,throttle-group=%s,file=%s,read-only=%s", node, throttleGroup, child, ro)
}

// SetDiskLimits implements hv.DiskThrottler. A VM started with limits has
// the group object: its limits change in one qom-set, atomically for all
// disks. A VM started without them has neither group nor filter nodes
// (its command line is unchanged by this feature), and a filter cannot be
// put above a device's node while it runs; its devices' own throttling
// (block_set_io_throttle, the BlockBackend's legacy throttle, which counts
// the same guest requests) then joins them in one group of the same name.
// Setting all limits to 0 lifts them either way.
func (in *instance) SetDiskLimits(ctx context.Context, d vm.DiskResources) error {
	l, err := DiskLimitsOf(d)
	if err != nil {
		return err
	}
	err = in.exec(ctx, "qom-set", map[string]any{"path": "/objects/" + throttleGroup, "property": "limits", "value": l}, nil)
	var qe *QMPError
	if err == nil || !errors.As(err, &qe) || qe.Class != "DeviceNotFound" {
		if err != nil {
			return fmt.Errorf("disk limits: %w", err)
		}
		return nil
	}
	return in.setDeviceThrottle(ctx, l)
}

// blockDevice is what setDeviceThrottle reads of query-block: the device's
// QOM path and its current legacy limits.
type blockDevice struct {
	QDev     string `json:"qdev"`
	Inserted *struct {
		NodeName string `json:"node-name"`
		ReadBPS  int64  `json:"bps_rd"`
		WriteBPS int64  `json:"bps_wr"`
		ReadOps  int64  `json:"iops_rd"`
		WriteOps int64  `json:"iops_wr"`
	} `json:"inserted"`
}

// setDeviceThrottle sets the legacy throttle of every block device with
// a medium to l, in group tg0. If one device refuses, those already
// changed get their previous limits back.
func (in *instance) setDeviceThrottle(ctx context.Context, l ThrottleLimits) error {
	var blocks []blockDevice
	if err := in.exec(ctx, "query-block", nil, &blocks); err != nil {
		return fmt.Errorf("disk limits: %w", err)
	}
	var devs []blockDevice
	for _, b := range blocks {
		if b.Inserted == nil || b.QDev == "" {
			continue
		}
		if len(devs) == maxBlockDevices {
			return fmt.Errorf("disk limits: the hypervisor reports more than %d block devices", maxBlockDevices)
		}
		devs = append(devs, b)
	}
	set := func(ctx context.Context, qdev string, l ThrottleLimits) error {
		return in.exec(ctx, "block_set_io_throttle", map[string]any{"id": qdev, "group": throttleGroup,
			"bps": 0, "bps_rd": l.ReadBPS, "bps_wr": l.WriteBPS,
			"iops": 0, "iops_rd": l.ReadIOPS, "iops_wr": l.WriteIOPS}, nil)
	}
	for i, b := range devs {
		if err := set(ctx, b.QDev, l); err != nil {
			for _, p := range devs[:i] {
				old := ThrottleLimits{ReadBPS: p.Inserted.ReadBPS, WriteBPS: p.Inserted.WriteBPS, ReadIOPS: p.Inserted.ReadOps, WriteIOPS: p.Inserted.WriteOps}
				_ = set(context.WithoutCancel(ctx), p.QDev, old)
			}
			return fmt.Errorf("disk limits: device %d (node %s): %w", i, b.Inserted.NodeName, err)
		}
	}
	return nil
}

// throttledTops finds, for disks whose device sits on a throttle filter,
// the format node under the filter: of the nodes named diskN or diskNsX
// (Build, SnapshotDisks), the one with the deepest backing chain, since
// each live snapshot puts an overlay one deeper on top. QMP names no
// filter's child in its stable commands; the names are the daemon's.
func (in *instance) throttledTops(ctx context.Context, disks map[int]bool) (map[int]string, error) {
	var nodes []struct {
		NodeName string `json:"node-name"`
		Driver   string `json:"drv"`
		Depth    int    `json:"backing_file_depth"`
	}
	if err := in.exec(ctx, "query-named-block-nodes", map[string]any{"flat": false}, &nodes); err != nil {
		return nil, err
	}
	out := map[int]string{}
	depth := map[int]int{}
	for _, n := range nodes {
		if n.Driver != "raw" && n.Driver != "qcow2" { // file and filter nodes
			continue
		}
		i, ok := diskOfNode(n.NodeName)
		if !ok || !disks[i] {
			continue
		}
		if d, seen := depth[i]; !seen || n.Depth > d {
			out[i], depth[i] = n.NodeName, n.Depth
		}
	}
	return out, nil
}
