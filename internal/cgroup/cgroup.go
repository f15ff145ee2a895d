// Package cgroup gives every VM (and the introspection monitor) a control
// group of its own, so the daemon can enforce the CPU, memory, block I/O
// and process limits of everything a VM runs, and can find and kill all
// of those processes, including orphans left behind by a daemon crash
// (scan Children, Open each, Kill, Remove). Groups nest: the groups of
// resource pools are parents of their VMs' groups, and the kernel applies
// a pool's caps to its VMs together.
//
// # Controls
//
// Limits holds the controls; Create writes them to a new or existing
// group, Apply to an existing one (a live pool changed in place). Each
// control is written every time, a zero field as its reset value, in a
// fixed order (Hierarchy.Apply lists the files). Hard caps (CPU, memory,
// I/O, pids) are enforced or fail the call; weights and protections are
// written where the host has the file for them, and Group.Unenforced
// names each one it has not. Protections and weights are hierarchical: a
// VM's memory.min or weight counts only within its pool's, so a pool's
// protection must cover its VMs'. Usage (CPU time and throttling, memory,
// I/O bytes and operations) is in Stats, which for a pool includes its
// VMs.
//
// Two layouts are supported. cgroup v2, the unified hierarchy that a
// systemd host mounts at /sys/fs/cgroup, is the production target: a group
// is one directory holding every controller's files. cgroup v1 mounts one
// hierarchy per controller (/sys/fs/cgroup/memory, /sys/fs/cgroup/pids,
// ...), so a group is one directory in each. Bulwark requires the memory
// and pids controllers and also places its groups in the cpu and io (v1:
// cpu, cpuacct and blkio) controllers when they are available. A hybrid host (v1
// controllers plus a v2 mount at /sys/fs/cgroup/unified without them) is
// used as v1.
//
// # Where groups live
//
// Group paths such as "bulwark/vm/web1" are relative to a base directory
// in each hierarchy. By default the base is the hierarchy's root, which
// suits a daemon that runs as root and is not managed by a cgroup manager.
// With SelfBase the base is the daemon's own cgroup as listed in
// /proc/self/cgroup. That is the right choice on a systemd host (Debian 12:
// cgroup v2 only), where groups outside a delegated subtree are systemd's:
// run the daemon as a service with Delegate=yes, and systemd hands it the
// subtree below its own cgroup (/sys/fs/cgroup/system.slice/bulwark.service)
// and keeps out of it. Limits in the unit (MemoryMax=, TasksMax=) then cap
// the daemon and all its VMs together. cgroup v2 forbids a group that
// contains processes from enabling controllers for its children (the "no
// internal processes" rule; the root is exempt), so with SelfBase on v2
// the daemon must first move itself into a leaf, for example
// MoveSelf("daemon"), before it creates any other group; Create fails with
// EBUSY until then. On v1 the rule does not exist and MoveSelf is
// optional.
//
// # Trust
//
// The cgroup filesystem is root-owned, so only the daemon (or another root
// process) creates directories in it. Still, below the base no path
// component is followed unless os.Lstat shows a real directory, and every
// interface file is opened with O_NOFOLLOW: a symlink in the tree is an
// error, never followed. Mount points themselves (for example v1's
// /sys/fs/cgroup/cpu -> cpu,cpuacct) are resolved once, by Detect.
//
// A process added to a group may fork before Add returns; callers keep a
// new process from running untrusted code until it is in its group (the
// jail hands its child the Spec only after Add).
package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Version is the cgroup layout in use: 1 or 2.
type Version int

const (
	V1 Version = 1
	V2 Version = 2
)

// Stats is a snapshot of a group's usage and limit counters. Counters
// include the group's descendants (a pool's figures cover its VMs).
type Stats struct {
	MemoryCurrent int64  // bytes in use
	MemoryMax     int64  // bytes; 0 = no cap
	OOMKills      uint64 // processes killed by the OOM killer because of the cap
	PidsCurrent   int    // tasks in the group
	PidsMax       int    // 0 = no cap
	PidsMaxHits   uint64 // forks refused because PidsMax was reached
	CPU           CPUStats
	IO            IOStats
}

// CPUStats is CPU time used and time throttled by CPUMaxMilli, since the
// group was created.
type CPUStats struct {
	// Available is false where usage is not accounted (v1 without a
	// cpuacct hierarchy); the fields are then 0.
	Available bool
	UsageUsec uint64 // CPU time, user and system (v2 usage_usec; v1 cpuacct.usage / 1000)
	// Throttling, from cpu.stat of the cpu controller (0 without it, where
	// no cap can be set either).
	NrPeriods     uint64 // enforcement periods with runnable tasks
	NrThrottled   uint64 // periods in which the quota ran out
	ThrottledUsec uint64 // time the group's tasks were held back
}

// IOStats is block I/O done by the group, summed over devices (v2
// io.stat; v1 blkio.throttle.io_service_bytes_recursive and
// io_serviced_recursive).
type IOStats struct {
	Available  bool // false without the io (v1: blkio) controller
	ReadBytes  uint64
	WriteBytes uint64
	ReadOps    uint64
	WriteOps   uint64
}

// The controllers Bulwark uses, by version. The first two are required.
var (
	v1Controllers = []string{"memory", "pids", "cpu", "cpuacct", "blkio"}
	v2Controllers = []string{"memory", "pids", "cpu", "io"}
)

// DefaultRoot is where the cgroup filesystems are mounted.
const DefaultRoot = "/sys/fs/cgroup"

// Hierarchy is the detected cgroup layout and the base groups are created
// under. It is safe for concurrent use; it holds no open files.
type Hierarchy struct {
	version     Version
	hiers       []hier // v2: exactly one; v1: one per mounted hierarchy, memory first
	controllers []string

	// noKillFile makes Kill ignore cgroup.kill (tests of the fallback).
	noKillFile bool
	// populate, when set, runs after each mkdir; tests use it to play the
	// kernel's part in a fake tree.
	populate func(dir string) error
	// trace, when set, sees every control write of Create and Apply, in
	// order (tests of a fake tree, whose plain files keep only the last).
	trace func(file, value string)
}

// hier is one mounted hierarchy.
type hier struct {
	mount       string   // the hierarchy's root directory, symlinks resolved
	base        string   // absolute directory groups are created under (mount or below)
	controllers []string // v1: the controllers mounted here that Bulwark uses; v2: nil
}

// Option changes how Detect chooses the base.
type Option func(*config)

type config struct {
	selfBase   bool
	selfCgroup string // file to read own cgroup from
}

// SelfBase makes group paths relative to the calling process's own cgroup
// (from /proc/self/cgroup) instead of each hierarchy's root. See the
// package documentation for when that is needed.
func SelfBase() Option {
	return func(c *config) { c.selfBase = true }
}

// selfCgroupFrom reads the own-cgroup list from path instead (tests).
func selfCgroupFrom(path string) Option {
	return func(c *config) { c.selfCgroup = path }
}

// Detect detects the layout under DefaultRoot.
func Detect(opts ...Option) (*Hierarchy, error) {
	return DetectAt(DefaultRoot, opts...)
}

// DetectAt detects the layout under root: v2 when root/cgroup.controllers
// lists memory and pids, otherwise v1, which needs root/memory and
// root/pids hierarchies (root/cpu, root/cpuacct and root/blkio are used
// when present).
func DetectAt(root string, opts ...Option) (*Hierarchy, error) {
	cfg := config{selfCgroup: "/proc/self/cgroup"}
	for _, o := range opts {
		o(&cfg)
	}
	root, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil, fmt.Errorf("cgroup: root: %w", err)
	}
	var own *selfCgroups
	if cfg.selfBase {
		b, err := os.ReadFile(cfg.selfCgroup)
		if err != nil {
			return nil, fmt.Errorf("cgroup: own cgroup: %w", err)
		}
		if own, err = parseSelfCgroup(string(b)); err != nil {
			return nil, fmt.Errorf("cgroup: %s: %w", cfg.selfCgroup, err)
		}
	}
	var v2err error
	if b, err := readFile(filepath.Join(root, "cgroup.controllers")); err == nil {
		h, err := detectV2(root, strings.Fields(b), own)
		if err == nil {
			return h, nil
		}
		v2err = err
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	h, err := detectV1(root, own)
	if err != nil && v2err != nil {
		return nil, fmt.Errorf("%w; and %w", v2err, err)
	}
	return h, err
}

// Version reports the layout in use.
func (h *Hierarchy) Version() Version { return h.version }

// Controllers lists the controllers groups are placed in: memory and pids,
// then those of cpu and io (v1: cpu, cpuacct and blkio) that are
// available.
func (h *Hierarchy) Controllers() []string { return slices.Clone(h.controllers) }

// Create creates the group at path (for example "bulwark/vm/web1") with
// its missing parents, enables the controllers for it (v2), and applies l
// as Apply does. It is idempotent: an existing group is reused and its
// controls are set to l. On an error the group may exist with some
// controls written: the caller must not place processes in it.
func (h *Hierarchy) Create(path string, l Limits) (*Group, error) {
	if err := validatePath(path); err != nil {
		return nil, err
	}
	if err := l.validate(); err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", path, err)
	}
	var g *Group
	var err error
	if h.version == V2 {
		g, err = h.createV2(path, true)
	} else {
		g, err = h.createV1(path)
	}
	if err != nil {
		return nil, err
	}
	if err := g.apply(l); err != nil {
		return nil, err
	}
	return g, nil
}

// Apply sets the controls of the existing group at path to l, without
// recreating it: processes stay, counters keep counting. It writes, in
// this order and each time (a zero field writes the reset value):
//
//	v2: cpu.weight, cpu.max "QUOTA 100000", memory.min, memory.low,
//	    memory.max, memory.swap.max, io.weight "default N", io.max (one
//	    line per device, then "MAJ:MIN rbps=max wbps=max riops=max
//	    wiops=max" for each device no longer limited), pids.max.
//	v1: cpu.shares, cpu.cfs_period_us, cpu.cfs_quota_us (-1: none),
//	    memory.soft_limit_in_bytes (-1: none), memory.memsw.limit_in_bytes
//	    and memory.limit_in_bytes (the order keeping memsw >= memory),
//	    blkio.weight, blkio.throttle.{read,write}_{bps,iops}_device ("MAJ:MIN
//	    0" lifts a device's cap), pids.max.
//
// Each error names the file and the value. v1 refuses a child's CPU cap
// above its parent's (EINVAL): raise a parent before its children and
// lower children before their parent. See Limits for what is refused
// and what is reported by Group.Unenforced.
func (h *Hierarchy) Apply(path string, l Limits) (*Group, error) {
	if err := l.validate(); err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", path, err)
	}
	g, err := h.Open(path)
	if err != nil {
		return nil, err
	}
	if err := g.apply(l); err != nil {
		return nil, err
	}
	return g, nil
}

// MoveSelf creates the group at path without enabling controllers for it
// and moves the calling process (all its threads) into it. On v2 with
// SelfBase this empties the base, which the "no internal processes" rule
// requires before Create can enable controllers below it. Other processes
// in the base, if any, are the caller's to move.
func (h *Hierarchy) MoveSelf(path string) (*Group, error) {
	if err := validatePath(path); err != nil {
		return nil, err
	}
	var g *Group
	var err error
	if h.version == V2 {
		g, err = h.createV2(path, false)
	} else {
		g, err = h.createV1(path)
	}
	if err != nil {
		return nil, err
	}
	return g, g.Add(os.Getpid())
}

// Open returns the existing group at path. The error wraps fs.ErrNotExist
// when the group exists in none of the hierarchies; a group left half
// created (by a crash during Create) opens, so it can be killed and removed.
func (h *Hierarchy) Open(path string) (*Group, error) {
	if err := validatePath(path); err != nil {
		return nil, err
	}
	g := &Group{h: h, path: path}
	found := false
	for _, hr := range h.hiers {
		dir, err := walk(hr.base, path)
		switch {
		case err == nil:
			found = true
		case !errors.Is(err, fs.ErrNotExist):
			return nil, err
		}
		g.dirs = append(g.dirs, dir)
	}
	if !found {
		return nil, fmt.Errorf("cgroup %s: %w", path, fs.ErrNotExist)
	}
	return g, nil
}

// Children returns the sorted names of the groups directly below path (""
// is the base), over all hierarchies.
func (h *Hierarchy) Children(path string) ([]string, error) {
	if path != "" {
		if err := validatePath(path); err != nil {
			return nil, err
		}
	}
	var names []string
	found := false
	for _, hr := range h.hiers {
		dir := hr.base
		if path != "" {
			var err error
			if dir, err = walk(hr.base, path); errors.Is(err, fs.ErrNotExist) {
				continue
			} else if err != nil {
				return nil, err
			}
		}
		found = true
		ents, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("cgroup: %w", err)
		}
		for _, e := range ents {
			if e.Type().IsDir() && !slices.Contains(names, e.Name()) {
				names = append(names, e.Name())
			}
		}
	}
	if !found {
		return nil, fmt.Errorf("cgroup %s: %w", path, fs.ErrNotExist)
	}
	slices.Sort(names)
	return names, nil
}
