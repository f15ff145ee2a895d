package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupBase is a `bulwark serve --cgroup-base` of this process alone:
// daemons sharing a base take each other's VM cgroups for orphans and
// kill their processes at start (seen here: a daemon on the default base
// killed another benchmark's VM).
func cgroupBase() string { return fmt.Sprintf("bulwark-bench-disk-%d", os.Getpid()) }

// removeCgroups SIGKILLs whatever is left in the cgroups under base, in
// every hierarchy, removes them (children first) and returns how many
// processes it signalled.
func removeCgroups(base string) (int, error) {
	tops, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", base)) // v1: one per controller
	if fi, err := os.Stat(filepath.Join("/sys/fs/cgroup", base)); err == nil && fi.IsDir() {
		tops = append(tops, filepath.Join("/sys/fs/cgroup", base)) // v2
	}
	killed := 0
	var errs []error
	for _, top := range tops {
		var tree []string
		filepath.WalkDir(top, func(p string, e os.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				tree = append(tree, p)
			}
			return nil
		})
		for i := len(tree) - 1; i >= 0; i-- {
			err := syscall.Rmdir(tree[i])
			for try := 0; errors.Is(err, syscall.EBUSY) && try < 100; try++ {
				b, _ := os.ReadFile(filepath.Join(tree[i], "cgroup.procs"))
				for _, s := range strings.Fields(string(b)) {
					if pid, perr := strconv.Atoi(s); perr == nil && syscall.Kill(pid, syscall.SIGKILL) == nil {
						killed++
					}
				}
				time.Sleep(50 * time.Millisecond)
				err = syscall.Rmdir(tree[i])
			}
			if err != nil && !errors.Is(err, syscall.ENOENT) {
				errs = append(errs, fmt.Errorf("cgroup %s: %w", tree[i], err))
			}
		}
	}
	return killed, errors.Join(errs...)
}
