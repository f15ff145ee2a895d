package cgroup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Group is one group, present in every hierarchy of its Hierarchy.
type Group struct {
	h          *Hierarchy
	path       string
	dirs       []string // parallel to h.hiers
	unenforced []string // set by apply
}

// Path returns the group's path relative to the base.
func (g *Group) Path() string { return g.path }

// Unenforced lists, after Create or Apply, the controls of their Limits
// that this host cannot enforce and that were therefore not, or only
// approximately, applied: a weight without the file for it, a memory
// minimum on v1. Each entry is one sentence naming the control. Hard caps
// are never in this list: those fail Create and Apply instead.
func (g *Group) Unenforced() []string { return slices.Clone(g.unenforced) }

// apply validates nothing (callers did) and writes l.
func (g *Group) apply(l Limits) error {
	g.unenforced = nil
	var err error
	if g.h.version == V2 {
		err = g.setLimitsV2(l)
	} else {
		err = g.setLimitsV1(l)
	}
	if err != nil {
		return fmt.Errorf("cgroup %s: limits: %w", g.path, err)
	}
	return nil
}

// note records a control that is not enforced.
func (g *Group) note(format string, a ...any) {
	g.unenforced = append(g.unenforced, fmt.Sprintf(format, a...))
}

// write writes one control file.
func (g *Group) write(dir, file, value string) error {
	p := filepath.Join(dir, file)
	if g.h.trace != nil {
		g.h.trace(p, value)
	}
	return writeFile(p, value)
}

// Add moves the process pid (all its threads) into the group in every
// hierarchy.
func (g *Group) Add(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("cgroup %s: invalid pid %d", g.path, pid)
	}
	for _, dir := range g.dirs {
		if err := writeFile(filepath.Join(dir, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			return fmt.Errorf("cgroup %s: add: %w", g.path, err)
		}
	}
	return nil
}

// PIDs returns the processes in the group, sorted, over all hierarchies.
// Processes in child groups are not included.
func (g *Group) PIDs() ([]int, error) {
	var pids []int
	for _, dir := range g.dirs {
		p, err := readPIDs(filepath.Join(dir, "cgroup.procs"))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("cgroup %s: %w", g.path, err)
		}
		pids = append(pids, p...)
	}
	slices.Sort(pids)
	return slices.Compact(pids), nil
}

// Kill kills every process in the group and waits until the group is
// empty or ctx ends; then the error names the processes still alive. On
// v2 it writes cgroup.kill (Linux 5.14), which also catches processes
// forked meanwhile and those in child groups; callers should not rely on
// the latter and kill child groups first, as v1 needs. Otherwise it sends
// SIGKILL to each listed process, re-reading the list until it is empty;
// each signal goes through a pidfd after checking /proc/PID/cgroup, so a
// pid reused by an unrelated process is never signalled. Kill refuses to
// run while the calling process is in the group.
func (g *Group) Kill(ctx context.Context) error {
	useKillFile := false
	if g.h.version == V2 && !g.h.noKillFile {
		if _, err := os.Lstat(filepath.Join(g.dirs[0], "cgroup.kill")); err == nil {
			useKillFile = true
		}
	}
	self := os.Getpid()
	delay := time.Millisecond
	for round := 0; ; round++ {
		pids, err := g.PIDs()
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		if slices.Contains(pids, self) {
			return fmt.Errorf("cgroup %s: refusing to kill: the calling process %d is in it", g.path, self)
		}
		if useKillFile {
			if round == 0 {
				if err := writeFile(filepath.Join(g.dirs[0], "cgroup.kill"), "1"); err != nil {
					return fmt.Errorf("cgroup %s: kill: %w", g.path, err)
				}
			}
		} else {
			for _, pid := range pids {
				if err := killIfMember(pid, g.member); err != nil {
					return fmt.Errorf("cgroup %s: kill: %w", g.path, err)
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cgroup %s: processes %v still alive: %w", g.path, pids, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, 50*time.Millisecond)
	}
}

// member reports whether /proc/PID/cgroup content places the process in
// this group in any hierarchy. Paths there are relative to the mount root
// of each hierarchy (or a prefix of it outside our cgroup namespace), so a
// suffix match is used.
func (g *Group) member(procCgroup string) bool {
	own, err := parseSelfCgroup(procCgroup)
	if err != nil {
		return false
	}
	for i, hr := range g.h.hiers {
		rel := strings.TrimPrefix(g.dirs[i], hr.mount)
		match := func(p string, ok bool) bool {
			return ok && (p == rel || strings.HasSuffix(p, rel))
		}
		if g.h.version == V2 {
			if match(own.v2, own.hasV2) {
				return true
			}
			continue
		}
		for _, c := range hr.controllers {
			p, ok := own.v1[c]
			if match(p, ok) {
				return true
			}
		}
	}
	return false
}

// Remove removes the group's directory in every hierarchy. The group must
// be empty (no processes, no child groups); the kernel may report a
// just-killed group busy for a moment, so EBUSY is retried for up to a
// second. A directory already gone is not an error.
func (g *Group) Remove() error {
	for _, dir := range g.dirs {
		delay := time.Millisecond
		deadline := time.Now().Add(time.Second)
		for {
			err := syscall.Rmdir(dir)
			if err == nil || errors.Is(err, syscall.ENOENT) {
				break
			}
			if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
				return fmt.Errorf("cgroup %s: rmdir %s: %w", g.path, dir, err)
			}
			time.Sleep(delay)
			delay = min(2*delay, 50*time.Millisecond)
		}
	}
	return nil
}

// Stats reads the group's counters.
func (g *Group) Stats() (Stats, error) {
	var s Stats
	var err error
	if g.h.version == V2 {
		s, err = g.statsV2()
	} else {
		s, err = g.statsV1()
	}
	if err != nil {
		return Stats{}, fmt.Errorf("cgroup %s: stats: %w", g.path, err)
	}
	return s, nil
}

// dir returns the group's directory in the hierarchy holding a required
// controller (memory, pids).
func (g *Group) dir(controller string) string {
	d, ok := g.dirOf(controller)
	if !ok {
		panic("cgroup: no hierarchy for required controller " + controller)
	}
	return d
}

// dirOf returns the group's directory holding controller's files, and
// whether the controller is in use.
func (g *Group) dirOf(controller string) (string, bool) {
	if !slices.Contains(g.h.controllers, controller) {
		return "", false
	}
	if g.h.version == V2 {
		return g.dirs[0], true
	}
	for i, hr := range g.h.hiers {
		if slices.Contains(hr.controllers, controller) {
			return g.dirs[i], true
		}
	}
	return "", false
}
