package benchrun

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

// cgroupRoot is where cgroup hierarchies are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// CgroupBase is a cgroup base (`bulwark serve --cgroup-base`) of this
// benchmark process alone: daemons sharing one base would take each
// other's VM cgroups for orphans and kill them at start.
func CgroupBase(tag string) string {
	return fmt.Sprintf("bulwark-bench-%s-%d", tag, os.Getpid())
}

// RemoveCgroups kills whatever is left in the cgroups under base, in every
// hierarchy, and removes them. It returns how many processes it killed.
func RemoveCgroups(base string) (int, error) {
	dirs, _ := filepath.Glob(filepath.Join(cgroupRoot, "*", base))
	if fi, err := os.Stat(filepath.Join(cgroupRoot, base)); err == nil && fi.IsDir() {
		dirs = append(dirs, filepath.Join(cgroupRoot, base)) // v2 mounted at the root
	}
	killed := 0
	var errs []error
	for _, top := range dirs {
		var tree []string
		filepath.WalkDir(top, func(p string, e os.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				tree = append(tree, p)
			}
			return nil
		})
		for i := len(tree) - 1; i >= 0; i-- { // children before parents
			n, err := emptyCgroup(tree[i])
			killed += n
			if err == nil {
				err = os.Remove(tree[i])
			}
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("cgroup %s: %w", tree[i], err))
			}
		}
	}
	return killed, errors.Join(errs...)
}

// emptyCgroup SIGKILLs the processes in one cgroup directory and waits up
// to 5 s for it to empty. It returns how many it signalled.
func emptyCgroup(dir string) (int, error) {
	killed := 0
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if err != nil {
			return killed, err
		}
		pids := strings.Fields(string(b))
		if len(pids) == 0 {
			return killed, nil
		}
		if time.Now().After(deadline) {
			return killed, fmt.Errorf("processes %v still in it after SIGKILL", pids)
		}
		for _, s := range pids {
			if pid, err := strconv.Atoi(s); err == nil && syscall.Kill(pid, syscall.SIGKILL) == nil {
				killed++
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}
