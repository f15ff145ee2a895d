package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// detectV2 uses the unified hierarchy mounted at root, whose root group
// offers rootControllers.
func detectV2(root string, rootControllers []string, own *selfCgroups) (*Hierarchy, error) {
	for _, c := range v2Controllers[:2] {
		if !slices.Contains(rootControllers, c) {
			return nil, fmt.Errorf("cgroup v2 at %s: controller %s not available (cgroup.controllers: %q)", root, c, rootControllers)
		}
	}
	base := root
	if own != nil {
		if !own.hasV2 {
			return nil, fmt.Errorf("cgroup v2 at %s: own cgroup list has no v2 (0::) entry", root)
		}
		var err error
		if base, err = ownBase(root, own.v2); err != nil {
			return nil, err
		}
	}
	h, err := newV2(root, base)
	if err != nil {
		return nil, err
	}
	for _, c := range v2Controllers[:2] {
		if !slices.Contains(h.controllers, c) {
			return nil, fmt.Errorf("cgroup v2: controller %s not delegated to %s (missing from its cgroup.controllers; Delegate=yes?)", c, base)
		}
	}
	return h, nil
}

// newV2 returns a v2 Hierarchy creating groups under base, with those of
// v2Controllers that base can enable for its children.
func newV2(root, base string) (*Hierarchy, error) {
	s, err := readFile(filepath.Join(base, "cgroup.controllers"))
	if err != nil {
		return nil, err
	}
	avail := strings.Fields(s)
	h := &Hierarchy{version: V2, hiers: []hier{{mount: root, base: base}}}
	for _, c := range v2Controllers {
		if slices.Contains(avail, c) {
			h.controllers = append(h.controllers, c)
		}
	}
	return h, nil
}

// createV2 creates the group's directory and its missing parents. With
// enable, the controllers are enabled in cgroup.subtree_control of the
// base and of every parent on the way, so that the group gets their
// interface files; the group itself does not enable them for children,
// since it is meant to hold processes.
func (h *Hierarchy) createV2(path string, enable bool) (*Group, error) {
	dir := h.hiers[0].base
	for c := range strings.SplitSeq(path, "/") {
		if enable {
			if err := h.enableV2(dir); err != nil {
				return nil, fmt.Errorf("cgroup %s: %w", path, err)
			}
		}
		dir = filepath.Join(dir, c)
		if err := h.mkdir(dir); err != nil {
			return nil, fmt.Errorf("cgroup %s: %w", path, err)
		}
	}
	return &Group{h: h, path: path, dirs: []string{dir}}, nil
}

// enableV2 enables h.controllers for the children of dir.
func (h *Hierarchy) enableV2(dir string) error {
	file := filepath.Join(dir, "cgroup.subtree_control")
	s, err := readFile(file)
	if err != nil {
		return err
	}
	have := strings.Fields(s)
	var add []string
	for _, c := range h.controllers {
		if !slices.Contains(have, c) {
			add = append(add, "+"+c)
		}
	}
	if len(add) == 0 {
		return nil
	}
	if err := writeFile(file, strings.Join(add, " ")); err != nil {
		if errors.Is(err, syscall.EBUSY) {
			return fmt.Errorf("%w (the group holds processes, and v2 enables controllers only for groups without any: move them into a leaf first, see MoveSelf)", err)
		}
		return err
	}
	return nil
}

// setLimitsV2 writes l in the order documented at Hierarchy.Apply.
func (g *Group) setLimitsV2(l Limits) error {
	dir := g.dirs[0]
	has := func(c string) bool { return slices.Contains(g.h.controllers, c) }
	var w writes
	if has("cpu") {
		quota := "max"
		if q := l.cpuQuotaUsec(); q > 0 {
			quota = strconv.FormatInt(q, 10)
		}
		w.add("cpu.weight", strconv.Itoa(l.cpuWeight()))
		if err := g.optional(&w, dir, "cpu.max", quota+" "+strconv.Itoa(CPUPeriodUsec), l.CPUMaxMilli > 0, true); err != nil {
			return err // a kernel without CONFIG_CFS_BANDWIDTH
		}
	} else if err := g.noController("cpu", l.CPUMaxMilli > 0, l.wantsCPUWeight()); err != nil {
		return err
	}
	if has("memory") {
		// memory.min came in Linux 4.18.
		if err := g.optional(&w, dir, "memory.min", strconv.FormatInt(l.MemoryMin, 10), l.MemoryMin > 0, false); err != nil {
			return err
		}
		if err := g.optional(&w, dir, "memory.low", strconv.FormatInt(l.MemoryLow, 10), l.MemoryLow > 0, false); err != nil {
			return err
		}
		mem, swap := "max", "max"
		if l.MemoryMax > 0 {
			mem, swap = strconv.FormatInt(l.MemoryMax, 10), "0"
		}
		w.add("memory.max", mem)
		if ok, err := exists(filepath.Join(dir, "memory.swap.max")); err != nil {
			return err
		} else if ok {
			w.add("memory.swap.max", swap)
		}
	} else if l.MemoryMax > 0 || l.MemoryMin > 0 || l.MemoryLow > 0 {
		return errors.New("memory controller not available: cannot apply memory controls")
	}
	if has("io") {
		if ok, err := exists(filepath.Join(dir, "io.weight")); err != nil {
			return err
		} else if ok {
			w.add("io.weight", "default "+strconv.Itoa(l.ioWeight()))
			if l.wantsIOWeight() && !g.h.ioCostEnabled() {
				g.note("io weight %d written but not enforced: io.cost is enabled on no device (%s/io.cost.qos)", l.ioWeight(), g.h.hiers[0].mount)
			}
		} else if l.wantsIOWeight() {
			g.note("io weight %d not enforced: io.weight is absent (kernel without blk-iocost)", l.ioWeight())
		}
		cur, err := readFile(filepath.Join(dir, "io.max"))
		if err != nil {
			return err
		}
		devs, err := parseIOMaxV2(cur)
		if err != nil {
			return fmt.Errorf("%s: %w", filepath.Join(dir, "io.max"), err)
		}
		for _, d := range l.IO {
			w.add("io.max", fmt.Sprintf("%d:%d rbps=%s wbps=%s riops=%s wiops=%s", d.Major, d.Minor,
				maxOr(d.ReadBPS), maxOr(d.WriteBPS), maxOr(d.ReadIOPS), maxOr(d.WriteIOPS)))
		}
		for _, d := range devs {
			if !listed(l.IO, d) {
				w.add("io.max", d.String()+" rbps=max wbps=max riops=max wiops=max")
			}
		}
	} else if err := g.noController("io", len(l.IO) > 0, l.wantsIOWeight()); err != nil {
		return err
	}
	if has("pids") {
		pids := "max"
		if l.PidsMax > 0 {
			pids = strconv.Itoa(l.PidsMax)
		}
		w.add("pids.max", pids)
	} else if l.PidsMax > 0 {
		return errors.New("pids controller not available: cannot cap tasks")
	}
	return w.run(g, dir)
}

// ioCostEnabled reports whether the root's io.cost.qos enables the
// io.cost controller, which io.weight needs, on at least one device.
func (h *Hierarchy) ioCostEnabled() bool {
	s, err := readFile(filepath.Join(h.hiers[0].mount, "io.cost.qos"))
	if err != nil {
		return false
	}
	return slices.Contains(strings.Fields(s), "enable=1")
}

// writes is a list of control writes to one directory, done in order.
type writes [][2]string

func (w *writes) add(file, value string) { *w = append(*w, [2]string{file, value}) }

func (w writes) run(g *Group, dir string) error {
	for _, x := range w {
		if err := g.write(dir, x[0], x[1]); err != nil {
			return err
		}
	}
	return nil
}

// optional adds a write of file when the kernel has it. When it has not
// and the control is wanted (not a reset), a cap is an error and a
// protection a note.
func (g *Group) optional(w *writes, dir, file, value string, wanted, isCap bool) error {
	ok, err := exists(filepath.Join(dir, file))
	switch {
	case err != nil:
		return err
	case ok:
		w.add(file, value)
	case wanted && isCap:
		return fmt.Errorf("%s is absent: cannot write %q", filepath.Join(dir, file), value)
	case wanted:
		g.note("%s %s not enforced: %s is absent (older kernel)", file, value, file)
	}
	return nil
}

// noController handles controls asked of a controller the hierarchy
// lacks: a cap is an error, a weight a note.
func (g *Group) noController(c string, capped, weighted bool) error {
	if capped {
		return fmt.Errorf("%s controller not available: cannot apply its cap", c)
	}
	if weighted {
		g.note("%s weight not enforced: no %s controller", c, c)
	}
	return nil
}

// exists reports whether an interface file exists (without following a
// symlink).
func exists(path string) (bool, error) {
	_, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("cgroup: %w", err)
	}
	return true, nil
}

func maxOr(v uint64) string {
	if v == 0 {
		return "max"
	}
	return strconv.FormatUint(v, 10)
}

func listed(io []IOLimit, d device) bool {
	return slices.ContainsFunc(io, func(e IOLimit) bool { return e.Major == d.major && e.Minor == d.minor })
}

// statsV2 reads memory.current, memory.max, memory.events (oom_kill),
// pids.current, pids.max, pids.events (max), cpu.stat and io.stat.
func (g *Group) statsV2() (Stats, error) {
	dir := g.dirs[0]
	var s Stats
	var err error
	if s.MemoryCurrent, err = readInt(filepath.Join(dir, "memory.current")); err != nil {
		return s, err
	}
	if s.MemoryMax, err = readInt(filepath.Join(dir, "memory.max")); err != nil {
		return s, err
	}
	if s.OOMKills, err = readKeyed(filepath.Join(dir, "memory.events"), "oom_kill"); err != nil {
		return s, err
	}
	if err := readPidsStats(dir, &s); err != nil {
		return s, err
	}
	// cpu.stat is a core file: usage without the cpu controller,
	// throttling with it.
	cs, err := readFlat(filepath.Join(dir, "cpu.stat"))
	if err != nil {
		return s, err
	}
	s.CPU = CPUStats{Available: true, UsageUsec: cs["usage_usec"], NrPeriods: cs["nr_periods"],
		NrThrottled: cs["nr_throttled"], ThrottledUsec: cs["throttled_usec"]}
	if slices.Contains(g.h.controllers, "io") {
		p := filepath.Join(dir, "io.stat")
		b, err := readFile(p)
		if err != nil {
			return s, err
		}
		if s.IO, err = parseIOStatV2(b); err != nil {
			return s, fmt.Errorf("%s: %w", p, err)
		}
		s.IO.Available = true
	}
	return s, nil
}

// readFlat reads a flat-keyed file.
func readFlat(path string) (map[string]uint64, error) {
	b, err := readFile(path)
	if err != nil {
		return nil, err
	}
	m, err := parseFlat(b)
	if err != nil {
		return nil, fmt.Errorf("cgroup: %s: %w", path, err)
	}
	return m, nil
}

// readPidsStats reads the pids controller's files, which are the same in
// v1 and v2.
func readPidsStats(dir string, s *Stats) error {
	cur, err := readInt(filepath.Join(dir, "pids.current"))
	if err != nil {
		return err
	}
	limit, err := readInt(filepath.Join(dir, "pids.max"))
	if err != nil {
		return err
	}
	s.PidsCurrent, s.PidsMax = int(cur), int(limit)
	s.PidsMaxHits, err = readKeyed(filepath.Join(dir, "pids.events"), "max")
	return err
}
