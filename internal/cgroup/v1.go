package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// v1Unlimited is the smallest value v1 memory.limit_in_bytes shows for "no
// limit" (the kernel prints its page-rounded maximum, 9223372036854771712
// with 4 KiB pages); anything at or above it is reported as 0.
const v1Unlimited = 1 << 62

// detectV1 uses the per-controller hierarchies root/memory, root/pids and,
// when mounted, root/cpu and root/blkio.
func detectV1(root string, own *selfCgroups) (*Hierarchy, error) {
	h := &Hierarchy{version: V1}
	for i, c := range v1Controllers {
		required := i < 2
		mount, err := filepath.EvalSymlinks(filepath.Join(root, c))
		if err == nil {
			_, err = os.Lstat(filepath.Join(mount, "cgroup.procs"))
		}
		if err != nil {
			if !required && errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("cgroup v1: no %s hierarchy at %s: %w", c, root, err)
		}
		h.controllers = append(h.controllers, c)
		if j := slices.IndexFunc(h.hiers, func(hr hier) bool { return hr.mount == mount }); j >= 0 {
			h.hiers[j].controllers = append(h.hiers[j].controllers, c) // co-mounted, e.g. cpu,cpuacct
			continue
		}
		base := mount
		if own != nil {
			p, ok := own.v1[c]
			if !ok {
				return nil, fmt.Errorf("cgroup v1: own cgroup list has no %s entry", c)
			}
			if base, err = ownBase(mount, p); err != nil {
				return nil, err
			}
		}
		h.hiers = append(h.hiers, hier{mount: mount, base: base, controllers: []string{c}})
	}
	return h, nil
}

// createV1 creates the group's directory, and its missing parents, in
// every hierarchy.
func (h *Hierarchy) createV1(path string) (*Group, error) {
	g := &Group{h: h, path: path}
	for _, hr := range h.hiers {
		dir := hr.base
		for c := range strings.SplitSeq(path, "/") {
			dir = filepath.Join(dir, c)
			if err := h.mkdir(dir); err != nil {
				return nil, fmt.Errorf("cgroup %s: %w", path, err)
			}
			if slices.Contains(hr.controllers, "memory") {
				if err := useHierarchy(dir); err != nil {
					return nil, fmt.Errorf("cgroup %s: %w", path, err)
				}
			}
		}
		g.dirs = append(g.dirs, dir)
	}
	return g, nil
}

// The v1 throttle files, in the order written, with the IOLimit field
// each takes.
var blkioThrottleFiles = []struct {
	file  string
	value func(IOLimit) uint64
}{
	{"blkio.throttle.read_bps_device", func(d IOLimit) uint64 { return d.ReadBPS }},
	{"blkio.throttle.write_bps_device", func(d IOLimit) uint64 { return d.WriteBPS }},
	{"blkio.throttle.read_iops_device", func(d IOLimit) uint64 { return d.ReadIOPS }},
	{"blkio.throttle.write_iops_device", func(d IOLimit) uint64 { return d.WriteIOPS }},
}

// useHierarchy makes the memory limits of dir cover its descendants (a
// pool's cap covers its VMs). Kernels since 5.16 always do and show 1;
// older ones inherit the parent's setting, 0 at the root unless systemd
// changed it, and accept 1 while dir has no children.
func useHierarchy(dir string) error {
	p := filepath.Join(dir, "memory.use_hierarchy")
	if ok, err := exists(p); err != nil || !ok {
		return err
	}
	v, err := readInt(p)
	if err != nil || v == 1 {
		return err
	}
	return writeFile(p, "1")
}

// setLimitsV1 writes l in the order documented at Hierarchy.Apply.
func (g *Group) setLimitsV1(l Limits) error {
	if dir, ok := g.dirOf("cpu"); ok {
		w := writes{{"cpu.shares", strconv.Itoa(l.cpuShares())}}
		// The cfs files need CONFIG_CFS_BANDWIDTH; the period goes first,
		// since the kernel checks the quota against it.
		if err := g.optional(&w, dir, "cpu.cfs_period_us", strconv.Itoa(CPUPeriodUsec), l.CPUMaxMilli > 0, true); err != nil {
			return err
		}
		if err := g.optional(&w, dir, "cpu.cfs_quota_us", strconv.FormatInt(l.cpuQuotaUsec(), 10), l.CPUMaxMilli > 0, true); err != nil {
			return err
		}
		if err := w.run(g, dir); err != nil {
			return err
		}
	} else if err := g.noController("cpu", l.CPUMaxMilli > 0, l.wantsCPUWeight()); err != nil {
		return err
	}

	mem := g.dir("memory")
	soft := max(l.MemoryLow, l.MemoryMin)
	if l.MemoryMin > 0 {
		g.note("memory min %d not guaranteed: cgroup v1 has no memory.min; memory.soft_limit_in_bytes %d only steers reclaim", l.MemoryMin, soft)
	}
	if soft == 0 {
		soft = -1
	}
	if err := g.write(mem, "memory.soft_limit_in_bytes", strconv.FormatInt(soft, 10)); err != nil {
		return err
	}
	if err := g.setMemoryV1(mem, l.MemoryMax); err != nil {
		return err
	}

	if dir, ok := g.dirOf("blkio"); ok {
		if err := g.setBlkioV1(dir, l); err != nil {
			return err
		}
	} else if err := g.noController("blkio", len(l.IO) > 0, l.wantsIOWeight()); err != nil {
		return err
	}

	pids := "max"
	if l.PidsMax > 0 {
		pids = strconv.Itoa(l.PidsMax)
	}
	return g.write(g.dir("pids"), "pids.max", pids)
}

// setBlkioV1 writes blkio.weight, when the file exists (it needs CFQ or
// BFQ), and the throttle files: each limited device's value (0 lifts the
// cap), then "MAJ:MIN 0" for each listed device no longer limited.
func (g *Group) setBlkioV1(dir string, l Limits) error {
	if ok, err := exists(filepath.Join(dir, "blkio.weight")); err != nil {
		return err
	} else if ok {
		if err := g.write(dir, "blkio.weight", strconv.Itoa(l.blkioWeight())); err != nil {
			return err
		}
	} else if l.wantsIOWeight() {
		g.note("blkio weight %d not enforced: blkio.weight is absent (no CFQ or BFQ I/O scheduler)", l.blkioWeight())
	}
	for _, tf := range blkioThrottleFiles {
		p := filepath.Join(dir, tf.file)
		cur, err := readFile(p)
		if err != nil {
			return err
		}
		devs, err := parseDeviceValues(cur)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		var w writes
		for _, d := range l.IO {
			w.add(tf.file, fmt.Sprintf("%d:%d %d", d.Major, d.Minor, tf.value(d)))
		}
		for _, d := range devs {
			if !listed(l.IO, d) {
				w.add(tf.file, d.String()+" 0")
			}
		}
		if err := w.run(g, dir); err != nil {
			return err
		}
	}
	return nil
}

// setMemoryV1 sets both the memory and the memory+swap limit to
// limitBytes (0: none). The kernel keeps memsw >= memory at all times, so
// when raising, memsw goes first, and when lowering, last.
func (g *Group) setMemoryV1(dir string, limitBytes int64) error {
	val, want := "-1", int64(math.MaxInt64)
	if limitBytes > 0 {
		val, want = strconv.FormatInt(limitBytes, 10), limitBytes
	}
	const limit, memsw = "memory.limit_in_bytes", "memory.memsw.limit_in_bytes"
	if ok, err := exists(filepath.Join(dir, memsw)); err != nil {
		return err
	} else if !ok {
		return g.write(dir, limit, val) // no swap accounting (swapaccount=0)
	}
	cur, err := readInt(filepath.Join(dir, memsw))
	if err != nil {
		return err
	}
	w := writes{{limit, val}, {memsw, val}}
	if want > cur {
		w[0], w[1] = w[1], w[0]
	}
	return w.run(g, dir)
}

// statsV1 reads memory.usage_in_bytes, memory.limit_in_bytes,
// memory.oom_control (oom_kill, Linux 4.13), pids.current, pids.max,
// pids.events (max), and where mounted cpuacct.usage, cpu.stat and
// blkio.throttle.io_service{_bytes,d}_recursive.
func (g *Group) statsV1() (Stats, error) {
	mem := g.dir("memory")
	var s Stats
	var err error
	if s.MemoryCurrent, err = readInt(filepath.Join(mem, "memory.usage_in_bytes")); err != nil {
		return s, err
	}
	if s.MemoryMax, err = readInt(filepath.Join(mem, "memory.limit_in_bytes")); err != nil {
		return s, err
	}
	if s.MemoryMax >= v1Unlimited {
		s.MemoryMax = 0
	}
	if s.OOMKills, err = readKeyed(filepath.Join(mem, "memory.oom_control"), "oom_kill"); err != nil {
		return s, err
	}
	if err := readPidsStats(g.dir("pids"), &s); err != nil {
		return s, err
	}
	if dir, ok := g.dirOf("cpuacct"); ok {
		ns, err := readInt(filepath.Join(dir, "cpuacct.usage"))
		if err != nil {
			return s, err
		}
		s.CPU.Available, s.CPU.UsageUsec = true, uint64(max(ns, 0))/1000
	}
	if dir, ok := g.dirOf("cpu"); ok {
		cs, err := readFlat(filepath.Join(dir, "cpu.stat"))
		if err != nil {
			return s, err
		}
		s.CPU.NrPeriods, s.CPU.NrThrottled, s.CPU.ThrottledUsec = cs["nr_periods"], cs["nr_throttled"], cs["throttled_time"]/1000
	}
	if dir, ok := g.dirOf("blkio"); ok {
		for _, f := range []struct {
			file        string
			read, write *uint64
		}{
			{"blkio.throttle.io_service_bytes_recursive", &s.IO.ReadBytes, &s.IO.WriteBytes},
			{"blkio.throttle.io_serviced_recursive", &s.IO.ReadOps, &s.IO.WriteOps},
		} {
			p := filepath.Join(dir, f.file)
			b, err := readFile(p)
			if err != nil {
				return s, err
			}
			if *f.read, *f.write, err = parseBlkioV1(b); err != nil {
				return s, fmt.Errorf("%s: %w", p, err)
			}
		}
		s.IO.Available = true
	}
	return s, nil
}
