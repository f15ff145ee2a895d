package cgroup

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ErrInvalidPath is wrapped by the errors for group paths that are not
// accepted.
var ErrInvalidPath = errors.New("invalid cgroup path")

// Implementation limits on group paths. Component names are those of VMs
// (DNS labels, 63 bytes), pools ("pool." and a DNS label) and the monitor;
// the depth allows a base, a pool tree and a VM. The bounds keep paths far
// below PATH_MAX together with any base.
const (
	maxPathLen      = 1024
	maxComponentLen = 128
	maxDepth        = 16
	maxFileSize     = 4 << 20 // bytes read from one interface file (cgroup.procs of a large group)
)

// validatePath accepts 1 to maxDepth components separated by single
// slashes, each of [A-Za-z0-9._-], not "." or "..".
func validatePath(path string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w %q: %s", ErrInvalidPath, path, why)
	}
	if path == "" {
		return bad("empty")
	}
	if len(path) > maxPathLen {
		return bad(fmt.Sprintf("longer than %d bytes", maxPathLen))
	}
	comps := strings.Split(path, "/")
	if len(comps) > maxDepth {
		return bad(fmt.Sprintf("more than %d components", maxDepth))
	}
	for _, c := range comps {
		switch {
		case c == "":
			return bad("empty component (leading, trailing or double slash)")
		case c == "." || c == "..":
			return bad("component " + c)
		case len(c) > maxComponentLen:
			return bad(fmt.Sprintf("component longer than %d bytes", maxComponentLen))
		}
		for _, r := range c {
			ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
			if !ok {
				return bad(fmt.Sprintf("character %q not in [A-Za-z0-9._-]", r))
			}
		}
	}
	return nil
}

// checkDir fails unless dir is a directory itself, not a symlink to one.
func checkDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("cgroup: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("cgroup: %s is not a directory (mode %v); refusing to use it", dir, fi.Mode().Type())
	}
	return nil
}

// walk returns base/path after checking that each component below base is
// a real directory. The error wraps fs.ErrNotExist when one is missing.
func walk(base, path string) (string, error) {
	dir := base
	for c := range strings.SplitSeq(path, "/") {
		dir = filepath.Join(dir, c)
		if err := checkDir(dir); err != nil {
			return filepath.Join(base, path), err
		}
	}
	return dir, nil
}

// mkdir creates dir unless it already exists as a real directory.
func (h *Hierarchy) mkdir(dir string) error {
	err := checkDir(dir)
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return checkDir(dir) // created concurrently
		}
		return fmt.Errorf("cgroup: %w", err)
	}
	if h.populate != nil {
		return h.populate(dir)
	}
	return nil
}

// writeFile writes value to an existing interface file in one write(2), as
// the kernel requires.
func writeFile(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", value, path, err)
	}
	_, err = f.Write([]byte(value))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", value, path, err)
	}
	return nil
}

// readFile reads an interface file of at most maxFileSize bytes.
func readFile(path string) (string, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("cgroup: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return "", fmt.Errorf("cgroup: read %s: %w", path, err)
	}
	if len(b) > maxFileSize {
		return "", fmt.Errorf("cgroup: %s is larger than %d bytes", path, maxFileSize)
	}
	return string(b), nil
}

// readPIDs reads cgroup.procs: one decimal pid per line.
func readPIDs(path string) ([]int, error) {
	s, err := readFile(path)
	if err != nil {
		return nil, err
	}
	var pids []int
	for f := range strings.FieldsSeq(s) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("cgroup: %s: bad pid %q", path, f)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// readInt reads a file holding one integer, or "max" (returned as 0, "no
// limit").
func readInt(path string) (int64, error) {
	s, err := readFile(path)
	if err != nil {
		return 0, err
	}
	s = strings.TrimSpace(s)
	if s == "max" {
		return 0, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cgroup: %s: not a number: %q", path, s)
	}
	return v, nil
}

// readKeyed reads key's value from a flat-keyed file ("key value" lines:
// memory.events, pids.events, v1 memory.oom_control). A missing key reads
// as 0: older kernels lack some (oom_kill in v1 before Linux 4.13).
func readKeyed(path, key string) (uint64, error) {
	s, err := readFile(path)
	if err != nil {
		return 0, err
	}
	v, err := parseKeyed(s, key)
	if err != nil {
		return 0, fmt.Errorf("cgroup: %s: %w", path, err)
	}
	return v, nil
}

func parseKeyed(s, key string) (uint64, error) {
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok || k != key {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("key %s: not a number: %q", key, v)
		}
		return n, nil
	}
	return 0, nil
}

// selfCgroups is a parsed /proc/PID/cgroup.
type selfCgroups struct {
	v2    string            // the "0::" line's path
	hasV2 bool              //
	v1    map[string]string // v1 controller name -> path
}

// parseSelfCgroup parses /proc/PID/cgroup lines "ID:CONTROLLERS:PATH".
func parseSelfCgroup(s string) (*selfCgroups, error) {
	out := &selfCgroups{v1: map[string]string{}}
	for line := range strings.SplitSeq(strings.TrimSpace(s), "\n") {
		id, rest, ok1 := strings.Cut(line, ":")
		ctrls, path, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 || !strings.HasPrefix(path, "/") {
			return nil, fmt.Errorf("bad line %q", line)
		}
		path = strings.TrimSuffix(path, " (deleted)")
		if id == "0" && ctrls == "" {
			out.v2, out.hasV2 = path, true
			continue
		}
		for c := range strings.SplitSeq(ctrls, ",") {
			out.v1[c] = path
		}
	}
	return out, nil
}

// ownBase returns the base under mount for the cgroup at path (from
// /proc/self/cgroup), checking that it exists there.
func ownBase(mount, path string) (string, error) {
	base := filepath.Join(mount, filepath.FromSlash(path))
	if base != mount && !strings.HasPrefix(base, mount+"/") {
		return "", fmt.Errorf("cgroup: own cgroup %q escapes %s", path, mount)
	}
	if err := checkDir(base); err != nil {
		return "", fmt.Errorf("cgroup: own cgroup %q under %s (in another cgroup namespace?): %w", path, mount, err)
	}
	return base, nil
}
