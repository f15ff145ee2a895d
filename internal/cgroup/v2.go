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

// setLimitsV2 writes memory.max, memory.swap.max (when swap is accounted)
// and pids.max.
func (g *Group) setLimitsV2(l Limits) error {
	dir := g.dirs[0]
	var writes [][2]string
	if slices.Contains(g.h.controllers, "memory") {
		mem, swap := "max", "max"
		if l.MemoryMax > 0 {
			mem, swap = strconv.FormatInt(l.MemoryMax, 10), "0"
		}
		writes = append(writes, [2]string{"memory.max", mem})
		if _, err := os.Lstat(filepath.Join(dir, "memory.swap.max")); err == nil {
			writes = append(writes, [2]string{"memory.swap.max", swap})
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("cgroup %s: %w", g.path, err)
		}
	}
	if slices.Contains(g.h.controllers, "pids") {
		pids := "max"
		if l.PidsMax > 0 {
			pids = strconv.Itoa(l.PidsMax)
		}
		writes = append(writes, [2]string{"pids.max", pids})
	}
	for _, w := range writes {
		if err := writeFile(filepath.Join(dir, w[0]), w[1]); err != nil {
			return fmt.Errorf("cgroup %s: limits: %w", g.path, err)
		}
	}
	return nil
}

// statsV2 reads memory.current, memory.max, memory.events (oom_kill),
// pids.current, pids.max and pids.events (max).
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
	return s, readPidsStats(dir, &s)
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
