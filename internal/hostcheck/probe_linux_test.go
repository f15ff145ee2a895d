package hostcheck

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGatherThisHost runs the real probe here: every check must come out
// with a status and a detail, whatever this machine offers.
func TestGatherThisHost(t *testing.T) {
	p := Gather()
	checks := Evaluate(p)
	if len(checks) != 11+len(hardening) {
		t.Fatalf("%d checks, want %d", len(checks), 11+len(hardening))
	}
	for _, c := range checks {
		switch c.Status {
		case StatusOK, StatusMissing, StatusWarn, StatusInfo:
		default:
			t.Errorf("%s: status %q", c.Name, c.Status)
		}
		if c.Detail == "" {
			t.Errorf("%s: no detail", c.Name)
		}
		t.Logf("%-34s %-7s %s", c.Name, c.Status, c.Detail)
	}
	// Facts every Linux this project supports has, root or not.
	if !p.Namespaces["mnt"] || !p.Namespaces["pid"] {
		t.Errorf("namespaces %v: /proc/self/ns not read", p.Namespaces)
	}
	if _, ok := p.Sysctls["fs.protected_hardlinks"]; !ok {
		t.Error("fs.protected_hardlinks not read from /proc/sys")
	}
	if !p.Seccomp.StatusField {
		t.Error(`no "Seccomp:" in /proc/self/status`)
	}
}

func TestProbeCgroupLayouts(t *testing.T) {
	mk := func(t *testing.T, files ...string) string {
		t.Helper()
		root := t.TempDir()
		for _, f := range files {
			p := filepath.Join(root, f)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte("cpu memory pids\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return root
	}
	t.Run("v2", func(t *testing.T) {
		c := probeCgroup(mk(t, "cgroup.controllers", "cgroup.procs"))
		if !c.V2 || strings.Join(c.Controllers, " ") != "cpu memory pids" || len(c.V1) != 0 {
			t.Errorf("%+v", c)
		}
	})
	t.Run("v1 with a joint mount", func(t *testing.T) {
		root := mk(t, "memory/cgroup.procs", "pids/cgroup.procs", "cpu,cpuacct/cgroup.procs")
		for _, l := range []string{"cpu", "cpuacct"} {
			if err := os.Symlink("cpu,cpuacct", filepath.Join(root, l)); err != nil {
				t.Fatal(err)
			}
		}
		c := probeCgroup(root)
		if c.V2 || c.Hybrid || strings.Join(c.V1, " ") != "cpu cpuacct memory pids" {
			t.Errorf("%+v", c)
		}
	})
	t.Run("hybrid", func(t *testing.T) {
		c := probeCgroup(mk(t, "memory/cgroup.procs", "pids/cgroup.procs", "unified/cgroup.procs", "unified/cgroup.controllers"))
		if c.V2 || !c.Hybrid || strings.Join(c.V1, " ") != "memory pids" {
			t.Errorf("%+v", c)
		}
	})
	t.Run("none", func(t *testing.T) {
		if c := probeCgroup(t.TempDir()); c.V2 || c.Hybrid || len(c.V1) != 0 {
			t.Errorf("%+v", c)
		}
	})
}
