package cgroup

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Tests in this file create real groups under /sys/fs/cgroup. They need
// root and skip otherwise. Every group is named below a top directory
// bulwark-test-PID-RANDOM; each test removes its tree, and TestMain fails
// the run if anything named bulwark-test-PID-* is left.

const helperEnv = "BULWARK_CGROUP_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "alloc" {
		allocHelper()
		return
	}
	code := m.Run()
	if left := leftovers(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "cgroup test groups left behind: %v\n", left)
		code = 1
	}
	os.Exit(code)
}

// allocHelper waits for a line on stdin (sent once it is in its group),
// then touches 256 MiB.
func allocHelper() {
	var b [1]byte
	os.Stdin.Read(b[:])
	const size = 256 << 20
	mem := make([]byte, size)
	for i := 0; i < size; i += 4096 {
		mem[i] = 1
	}
	fmt.Println("allocated", len(mem))
}

func topPrefix() string { return fmt.Sprintf("bulwark-test-%d-", os.Getpid()) }

// leftovers lists directories named topPrefix()* under DefaultRoot, four
// levels deep at most (deep enough for the own-cgroup bases used here).
func leftovers() []string {
	var left []string
	filepath.WalkDir(DefaultRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if strings.HasPrefix(d.Name(), topPrefix()) {
			left = append(left, p)
			return fs.SkipDir
		}
		if strings.Count(strings.TrimPrefix(p, DefaultRoot), "/") >= 4 {
			return fs.SkipDir
		}
		return nil
	})
	return left
}

func hostHierarchy(t *testing.T, opts ...Option) *Hierarchy {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates groups under " + DefaultRoot)
	}
	h, err := Detect(opts...)
	if err != nil {
		t.Skipf("no usable cgroup hierarchy: %v", err)
	}
	return h
}

// testTop creates the test's top group and registers the removal of its
// tree.
func testTop(t *testing.T, h *Hierarchy) string {
	t.Helper()
	r := make([]byte, 4)
	rand.Read(r)
	top := topPrefix() + hex.EncodeToString(r)
	if _, err := h.Create(top, Limits{}); err != nil {
		if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) {
			t.Skipf("cgroups not writable here: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { removeTree(t, h, top) })
	return top
}

// removeTree kills whatever is left in top's tree and removes it, deepest
// first, in every hierarchy, without going through the code under test.
func removeTree(t *testing.T, h *Hierarchy, top string) {
	for _, hr := range h.hiers {
		var dirs []string
		filepath.WalkDir(filepath.Join(hr.base, top), func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		slices.Reverse(dirs) // children after parents in WalkDir order
		for _, dir := range dirs {
			deadline := time.Now().Add(5 * time.Second)
			for {
				pids, _ := readPIDs(filepath.Join(dir, "cgroup.procs"))
				for _, pid := range pids {
					if pid != os.Getpid() {
						syscall.Kill(pid, syscall.SIGKILL)
					}
				}
				err := syscall.Rmdir(dir)
				if err == nil || errors.Is(err, syscall.ENOENT) {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("cleanup: rmdir %s: %v (pids %v)", dir, err, pids)
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		if _, err := os.Lstat(filepath.Join(hr.base, top)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("cleanup: %s left behind", filepath.Join(hr.base, top))
		}
	}
}

// start starts a command and makes sure it is killed and reaped at the
// end of the test.
func start(t *testing.T, cmd *exec.Cmd) *exec.Cmd {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

// startIn starts cmd, which must wait for a line on stdin before doing
// anything, adds it to g, then releases it.
func startIn(t *testing.T, g *Group, cmd *exec.Cmd) *exec.Cmd {
	t.Helper()
	w, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	start(t, cmd)
	if err := g.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("go\n"))
	w.Close()
	return cmd
}

func killedBySIGKILL(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

func killCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// checkLifecycle runs sleeps in a new group below top, then kills and
// removes it.
func checkLifecycle(t *testing.T, h *Hierarchy, path string, l Limits) {
	g, err := h.Create(path, l)
	if err != nil {
		t.Fatal(err)
	}
	var cmds []*exec.Cmd
	var want []int
	for range 3 {
		c := start(t, exec.Command("sleep", "60"))
		if err := g.Add(c.Process.Pid); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, c)
		want = append(want, c.Process.Pid)
	}
	slices.Sort(want)
	if got, err := g.PIDs(); err != nil || !slices.Equal(got, want) {
		t.Errorf("PIDs = %v, %v, want %v", got, err, want)
	}
	if err := g.Kill(killCtx(t)); err != nil {
		t.Fatal(err)
	}
	if got, err := g.PIDs(); err != nil || len(got) != 0 {
		t.Errorf("after Kill PIDs = %v, %v", got, err)
	}
	for _, c := range cmds {
		if err := c.Wait(); !killedBySIGKILL(err) {
			t.Errorf("sleep %d: %v, want killed by SIGKILL", c.Process.Pid, err)
		}
	}
	if err := g.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Open(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open after Remove: %v", err)
	}
}

func TestHostLimitsAndLifecycle(t *testing.T) {
	h := hostHierarchy(t)
	t.Logf("version %d, controllers %v, bases %+v", h.Version(), h.Controllers(), h.hiers)
	top := testTop(t, h)
	path := top + "/vm/web1"
	l := Limits{MemoryMax: 64 << 20, PidsMax: 8}
	g, err := h.Create(path, l)
	if err != nil {
		t.Fatal(err)
	}
	// Raise and lower again: on v1 the memsw limit must move first when
	// raising and last when lowering.
	for _, mem := range []int64{128 << 20, 64 << 20} {
		if _, err := h.Create(path, Limits{MemoryMax: mem, PidsMax: 8}); err != nil {
			t.Fatal(err)
		}
		s, err := g.Stats()
		if err != nil || s.MemoryMax != mem || s.PidsMax != 8 {
			t.Errorf("Stats = %+v, %v, want MemoryMax %d PidsMax 8", s, err, mem)
		}
	}
	if got, err := h.Children(top + "/vm"); err != nil || !slices.Equal(got, []string{"web1"}) {
		t.Errorf("Children = %v, %v", got, err)
	}
	c := start(t, exec.Command("sleep", "60"))
	if err := g.Add(c.Process.Pid); err != nil {
		t.Fatal(err)
	}
	// MemoryCurrent may be 0: memory charged before the move stays with the
	// old group.
	if s, err := g.Stats(); err != nil || s.PidsCurrent != 1 {
		t.Errorf("Stats with one sleep = %+v, %v", s, err)
	}
	if err := g.Remove(); err == nil {
		t.Error("Remove of a group with a process succeeded")
	}
	if err := g.Kill(killCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := g.Remove(); err != nil {
		t.Fatal(err)
	}
	checkLifecycle(t, h, path, l)
}

func TestHostPidsMax(t *testing.T) {
	h := hostHierarchy(t)
	top := testTop(t, h)
	g, err := h.Create(top+"/vm/forker", Limits{PidsMax: 8})
	if err != nil {
		t.Fatal(err)
	}
	startIn(t, g, exec.Command("sh", "-c", `read x; i=0; while [ $i -lt 20 ]; do sleep 60 & i=$((i+1)); done; wait`))
	var s Stats
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if s, err = g.Stats(); err != nil || s.PidsMaxHits > 0 {
			break
		}
	}
	if err != nil || s.PidsMaxHits == 0 || s.PidsCurrent > 8 {
		t.Errorf("Stats = %+v, %v, want PidsMaxHits > 0, PidsCurrent <= 8", s, err)
	}
	pids, _ := g.PIDs()
	t.Logf("stats %+v, pids %v", s, pids)
	// The shell may have died of the failed fork, leaving its sleeps as
	// orphans: Kill finds them through the group.
	if err := g.Kill(killCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := g.Remove(); err != nil {
		t.Fatal(err)
	}
}

func TestHostOOMKill(t *testing.T) {
	h := hostHierarchy(t)
	top := testTop(t, h)
	g, err := h.Create(top+"/vm/oom", Limits{MemoryMax: 64 << 20, PidsMax: 64})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=alloc")
	startIn(t, g, cmd)
	if err := cmd.Wait(); !killedBySIGKILL(err) {
		t.Errorf("helper touching 256 MiB in a 64 MiB group: %v, want killed by SIGKILL", err)
	}
	s, err := g.Stats()
	if err != nil || s.OOMKills == 0 {
		t.Errorf("Stats = %+v, %v, want OOMKills > 0", s, err)
	}
	t.Logf("stats %+v", s)
	if err := g.Kill(killCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := g.Remove(); err != nil {
		t.Fatal(err)
	}
}

// TestHostSelfBase creates groups below the test's own cgroup. On v2 that
// needs the test process moved into a leaf first, which this test cannot
// undo, so it runs on v1 only.
func TestHostSelfBase(t *testing.T) {
	h := hostHierarchy(t, SelfBase())
	if h.Version() != V1 {
		t.Skip("v2: creating groups below our own cgroup needs MoveSelf, not undoable in a test")
	}
	t.Logf("bases %+v", h.hiers)
	top := testTop(t, h)
	g, err := h.Create(top+"/vm/web1", Limits{MemoryMax: 64 << 20, PidsMax: 8})
	if err != nil {
		t.Fatal(err)
	}
	c := start(t, exec.Command("sleep", "60"))
	if err := g.Add(c.Process.Pid); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(c.Process.Pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if !g.member(string(b)) || !strings.Contains(string(b), "/"+top+"/vm/web1\n") {
		t.Errorf("/proc/PID/cgroup does not place the sleep in %s:\n%s", g.Path(), b)
	}
	if err := g.Kill(killCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := g.Remove(); err != nil {
		t.Fatal(err)
	}
}

// TestHostV2Kill runs the lifecycle on a real v2 hierarchy, both with
// cgroup.kill and with the SIGKILL loop. On a hybrid host that is the v2
// mount at unified, which has no memory or pids controller: only
// membership, Kill and Remove are exercised there.
func TestHostV2Kill(t *testing.T) {
	h := hostHierarchy(t)
	if h.Version() != V2 {
		unified := filepath.Join(DefaultRoot, "unified")
		if _, err := os.Stat(filepath.Join(unified, "cgroup.controllers")); err != nil {
			t.Skip("no v2 hierarchy here")
		}
		var err error
		if h, err = newV2(unified, unified); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("v2 at %s, controllers %v", h.hiers[0].base, h.Controllers())
	top := testTop(t, h)
	l := Limits{MemoryMax: 64 << 20, PidsMax: 8}
	if !slices.Contains(h.Controllers(), "memory") || !slices.Contains(h.Controllers(), "pids") {
		l = Limits{} // caps without their controller are refused
	}
	for _, noKillFile := range []bool{false, true} {
		h.noKillFile = noKillFile
		checkLifecycle(t, h, fmt.Sprintf("%s/vm/nokillfile-%v", top, noKillFile), l)
	}
}
