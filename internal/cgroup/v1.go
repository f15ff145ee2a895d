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
		}
		g.dirs = append(g.dirs, dir)
	}
	return g, nil
}

// setLimitsV1 writes memory.limit_in_bytes, memory.memsw.limit_in_bytes
// (when swap is accounted) and pids.max.
func (g *Group) setLimitsV1(l Limits) error {
	if err := setMemoryV1(g.dir("memory"), l.MemoryMax); err != nil {
		return fmt.Errorf("cgroup %s: limits: %w", g.path, err)
	}
	pids := "max"
	if l.PidsMax > 0 {
		pids = strconv.Itoa(l.PidsMax)
	}
	if err := writeFile(filepath.Join(g.dir("pids"), "pids.max"), pids); err != nil {
		return fmt.Errorf("cgroup %s: limits: %w", g.path, err)
	}
	return nil
}

// setMemoryV1 sets both the memory and the memory+swap limit to
// limitBytes (0: none). The kernel keeps memsw >= memory at all times, so
// when raising, memsw goes first, and when lowering, last.
func setMemoryV1(dir string, limitBytes int64) error {
	val, want := "-1", int64(math.MaxInt64)
	if limitBytes > 0 {
		val, want = strconv.FormatInt(limitBytes, 10), limitBytes
	}
	limit := filepath.Join(dir, "memory.limit_in_bytes")
	memsw := filepath.Join(dir, "memory.memsw.limit_in_bytes")
	if _, err := os.Lstat(memsw); errors.Is(err, fs.ErrNotExist) {
		return writeFile(limit, val) // no swap accounting (swapaccount=0)
	} else if err != nil {
		return err
	}
	cur, err := readInt(memsw)
	if err != nil {
		return err
	}
	order := []string{limit, memsw}
	if want > cur {
		order = []string{memsw, limit}
	}
	for _, f := range order {
		if err := writeFile(f, val); err != nil {
			return err
		}
	}
	return nil
}

// statsV1 reads memory.usage_in_bytes, memory.limit_in_bytes,
// memory.oom_control (oom_kill, Linux 4.13), pids.current, pids.max and
// pids.events (max).
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
	return s, readPidsStats(g.dir("pids"), &s)
}
