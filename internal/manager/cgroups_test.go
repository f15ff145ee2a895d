package manager

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

	"github.com/bulwark-project/bulwark/internal/cgroup"
)

func TestCheckRel(t *testing.T) {
	for _, tc := range []struct {
		vm, rel string
		ok      bool
	}{
		{"web1", "web1", true},
		{"web1", "pool.a/web1", true},
		{"web1", "pool.a/pool.b/web1", true},
		{"web1", "web2", false},
		{"web1", "pool.a/web2", false},
		{"web1", "x/web1", false},
		{"web1", "pool./web1", false},
		{"web1", "pool.a/web1/web1", false},
		{"web1", "", false},
		{"pool.a", "pool.a", false},
		{"a/b", "a/b", false},
	} {
		if err := checkVMRel(tc.vm, tc.rel); (err == nil) != tc.ok {
			t.Errorf("checkVMRel(%q, %q) = %v, want ok=%v", tc.vm, tc.rel, err, tc.ok)
		}
	}
	for _, tc := range []struct {
		rel string
		ok  bool
	}{{"", true}, {"pool.a", true}, {"pool.a/pool.b", true}, {"web1", false}, {"pool.a/web1", false}, {"pool.", false}} {
		if err := checkPoolRel(tc.rel); (err == nil) != tc.ok {
			t.Errorf("checkPoolRel(%q) = %v, want ok=%v", tc.rel, err, tc.ok)
		}
	}
}

// hostCgroupSet returns a CgroupSet over this host's cgroups below a
// fresh top group, removed at the end; it skips without root.
func hostCgroupSet(t *testing.T) *CgroupSet {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates groups under " + cgroup.DefaultRoot)
	}
	h, err := cgroup.Detect()
	if err != nil {
		t.Skipf("no usable cgroup hierarchy: %v", err)
	}
	r := make([]byte, 4)
	rand.Read(r)
	top := fmt.Sprintf("bulwark-mgrtest-%d-%s", os.Getpid(), hex.EncodeToString(r))
	if _, err := h.Create(top, cgroup.Limits{}); err != nil {
		if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) {
			t.Skipf("cgroups not writable here: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { removeCgroupTree(t, h, top) })
	return &CgroupSet{H: h, Base: top + "/vm"}
}

// removeCgroupTree kills and removes top's tree, deepest groups first.
func removeCgroupTree(t *testing.T, h *cgroup.Hierarchy, top string) {
	var paths []string
	var walk func(p string)
	walk = func(p string) {
		paths = append(paths, p)
		kids, _ := h.Children(p)
		for _, k := range kids {
			walk(p + "/" + k)
		}
	}
	walk(top)
	slices.Reverse(paths)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, p := range paths {
		g, err := h.Open(p)
		if err != nil {
			continue
		}
		if err := g.Kill(ctx); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if err := g.Remove(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
}

func inGroup(t *testing.T, pid int, rel string) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(string(b), ":/"+rel+"\n")
}

// TestCgroupSetPools places a VM in a pool on this host's cgroups, moves
// it to the root pool on its next start (the old group is found, killed
// and removed), and checks pool removal and the refusals.
func TestCgroupSetPools(t *testing.T) {
	c := hostCgroupSet(t)
	ctx := context.Background()
	if _, err := c.ApplyPool("", cgroup.Limits{CPUShares: 4096}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ApplyPool("pool.a", cgroup.Limits{CPUMaxMilli: 2000, MemoryMax: 1 << 30, PidsMax: 64}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ApplyPool("web1", cgroup.Limits{}); err == nil {
		t.Error("ApplyPool of a VM path accepted")
	}
	l := cgroup.Limits{CPUMaxMilli: 500, MemoryMax: 256 << 20, MemoryMin: 64 << 20, PidsMax: 16}
	if _, _, err := c.Prepare(ctx, "web1", "pool.zz/web1", l); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Prepare in a pool without a group: %v", err)
	}
	if _, _, err := c.Prepare(ctx, "web1", "pool.a/web2", l); err == nil {
		t.Error("Prepare with another VM's path accepted")
	}
	place, unenforced, err := c.Prepare(ctx, "web1", "pool.a/web1", l)
	if err != nil {
		t.Fatal(err)
	}
	if c.H.Version() == cgroup.V1 && len(unenforced) == 0 {
		t.Error("v1: memory min not reported unenforced")
	}
	sleep := exec.Command("sleep", "60")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })
	if err := place(sleep.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if !inGroup(t, sleep.Process.Pid, c.Base+"/pool.a/web1") {
		t.Error("sleep not in pool.a/web1")
	}
	if got, err := c.List(); err != nil || !slices.Equal(got, []string{"web1"}) {
		t.Errorf("List = %v, %v", got, err)
	}
	if n := c.OOMKills("web1"); n != 0 {
		t.Errorf("OOMKills = %d", n)
	}
	if err := c.RemovePool("pool.a"); err == nil || !strings.Contains(err.Error(), "web1") {
		t.Errorf("RemovePool of a pool with a VM: %v", err)
	}
	// A live pool changes in place; its VM keeps running.
	if _, err := c.ApplyPool("pool.a", cgroup.Limits{CPUMaxMilli: 3000, MemoryMax: 2 << 30, PidsMax: 64}); err != nil {
		t.Fatal(err)
	}
	if err := sleep.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("VM process gone after ApplyPool: %v", err)
	}

	// Next start in the root pool: the group in pool.a is found and its
	// process killed.
	if _, _, err := c.Prepare(ctx, "web1", "web1", l); err != nil {
		t.Fatal(err)
	}
	if err := sleep.Wait(); err == nil {
		t.Error("old run's process not killed")
	}
	if _, err := c.H.Open(c.Base + "/pool.a/web1"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("old group left: %v", err)
	}
	if _, err := c.H.Open(c.Base + "/web1"); err != nil {
		t.Errorf("new group: %v", err)
	}

	// A control that cannot be written: no group is left behind.
	bad := cgroup.Limits{IO: []cgroup.IOLimit{{Major: 4095, Minor: 7, ReadBPS: 1}}}
	if _, _, err := c.Prepare(ctx, "web3", "pool.a/web3", bad); err == nil || !strings.Contains(err.Error(), "4095:7") {
		t.Errorf("Prepare with an unwritable control: %v", err)
	}
	if _, err := c.H.Open(c.Base + "/pool.a/web3"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("group of a failed Prepare left: %v", err)
	}

	if _, err := c.Release(ctx, "web1"); err != nil {
		t.Fatal(err)
	}
	if got, err := c.List(); err != nil || len(got) != 0 {
		t.Errorf("List after Release = %v, %v", got, err)
	}
	if err := c.RemovePool("pool.a"); err != nil {
		t.Error(err)
	}
	if err := c.RemovePool("pool.a"); err != nil {
		t.Errorf("RemovePool of a removed pool: %v", err)
	}
	if err := c.RemovePool(""); err == nil {
		t.Error("root pool removed")
	}
	if _, err := os.Stat(filepath.Join(cgroup.DefaultRoot, "memory", c.Base, "pool.a")); c.H.Version() == cgroup.V1 && !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("pool.a still in memory hierarchy: %v", err)
	}
}
