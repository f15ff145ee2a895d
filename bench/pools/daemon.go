package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bulwark-project/bulwark/bench/internal/benchrun"
	"github.com/bulwark-project/bulwark/internal/client"
)

// daemon is one private `bulwark serve`: its own socket, state and run
// directories under dir, and its own cgroup base.
type daemon struct {
	bin        string
	dir        string
	socket     string
	logPath    string
	cgroupBase string
	c          *client.Client
	cmd        *exec.Cmd
	exited     chan struct{} // closed once cmd.Wait returned
}

func startDaemon(ctx context.Context, bin, qemuPath, dir string) (*daemon, error) {
	if err := os.Mkdir(dir, 0o711); err != nil {
		return nil, err
	}
	d := &daemon{bin: bin, dir: dir, socket: filepath.Join(dir, "bulwark.sock"), logPath: filepath.Join(dir, "daemon.log"),
		cgroupBase: benchrun.CgroupBase("pools"), exited: make(chan struct{})}
	d.c = client.New(d.socket)
	logf, err := os.Create(d.logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	d.cmd = exec.Command(bin, "serve", "--socket", d.socket, "--state-dir", filepath.Join(dir, "state"),
		"--run-dir", filepath.Join(dir, "run"), "--cgroup-base", d.cgroupBase, "--qemu", qemuPath,
		"--log-format", "text", "--audit-anchor-append-only=false") // temporary state: removable afterwards
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start daemon: %w", err)
	}
	go func() {
		d.cmd.Wait()
		close(d.exited)
	}()
	deadline := time.Now().Add(15 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := d.c.Host(cctx)
		cancel()
		if err == nil {
			return d, nil
		}
		if gerr := d.gone(); gerr != nil {
			d.shutdown()
			return nil, gerr
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			d.shutdown()
			return nil, fmt.Errorf("daemon not answering: %v\n%s", err, benchrun.Tail(d.logPath, 2048))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// gone reports an error once the daemon process has exited.
func (d *daemon) gone() error {
	select {
	case <-d.exited:
		return fmt.Errorf("the daemon exited (%v); log tail:\n%s", d.cmd.ProcessState, benchrun.Tail(d.logPath, 1024))
	default:
		return nil
	}
}

// shutdown force-stops every VM (a daemon that exits leaves its VMs
// running, by design), ends the daemon, then kills whatever is left in
// its cgroups and removes them.
func (d *daemon) shutdown() error {
	var errs []error
	select {
	case <-d.exited:
	default:
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		vms, err := d.c.ListVMs(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("list vms: %w", err))
		}
		for _, v := range vms {
			if v.State.Active() {
				if _, err := d.c.StopVM(ctx, v.Spec.Name, true, 1); err != nil {
					errs = append(errs, fmt.Errorf("stop %s: %w", v.Spec.Name, err))
				}
			}
		}
		cancel()
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(10 * time.Second):
			d.cmd.Process.Kill()
			<-d.exited
		}
	}
	n, err := benchrun.RemoveCgroups(d.cgroupBase)
	if n > 0 {
		errs = append(errs, fmt.Errorf("killed %d process(es) the daemon had left in cgroup %s", n, d.cgroupBase))
	}
	return errors.Join(append(errs, err)...)
}

// cli runs the bulwark CLI against the daemon, as an operator would.
func (d *daemon) cli(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, d.bin, args...)
	cmd.Env = append(os.Environ(), "BULWARK_SOCKET="+d.socket)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("bulwark %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// maxConsoleRead bounds what is read of a guest's console log: the guest
// writes it, so its size is the guest's choice.
const maxConsoleRead = 64 << 10

// lastSpin is the victim's latest counting-loop report on its console.
func (d *daemon) lastSpin(ctx context.Context, name string) (spinReport, bool, error) {
	b, err := d.c.ConsoleLog(ctx, name, maxConsoleRead)
	if err != nil {
		return spinReport{}, false, fmt.Errorf("console log of %s: %w", name, err)
	}
	r, ok := lastSpinReport(b)
	return r, ok, nil
}

// consoleHas reports whether a guest's console tail contains marker.
func (d *daemon) consoleHas(ctx context.Context, name, marker string) (bool, error) {
	b, err := d.c.ConsoleLog(ctx, name, maxConsoleRead)
	if err != nil {
		return false, fmt.Errorf("console log of %s: %w", name, err)
	}
	return bytes.Contains(b, []byte(marker)), nil
}

// vmCPU reads VM name's CPU time from its cgroup's accounting (v1
// cpuacct.usage, v2 cpu.stat usage_usec). The group is searched below the
// VM base, since pools nest it and a live move changes its place.
func (d *daemon) vmCPU(name string) (time.Duration, error) {
	dir, v2, err := d.vmGroup(name)
	if err != nil {
		return 0, err
	}
	if !v2 {
		b, err := os.ReadFile(filepath.Join(dir, "cpuacct.usage"))
		if err != nil {
			return 0, err
		}
		ns, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 63)
		if err != nil {
			return 0, fmt.Errorf("%s/cpuacct.usage: %w", dir, err)
		}
		return time.Duration(ns), nil
	}
	b, err := os.ReadFile(filepath.Join(dir, "cpu.stat"))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "usage_usec "); ok {
			us, err := strconv.ParseUint(v, 10, 63)
			if err != nil {
				return 0, fmt.Errorf("%s/cpu.stat: %w", dir, err)
			}
			return time.Duration(us) * time.Microsecond, nil
		}
	}
	return 0, fmt.Errorf("%s/cpu.stat has no usage_usec", dir)
}

// maxGroupWalk bounds the search of the daemon's cgroup tree.
const maxGroupWalk = 4096

// vmGroup finds VM name's group directory in the cpuacct hierarchy (v1)
// or the unified one (v2). After a live move to another pool the old
// group may linger, empty, for a moment: a group with processes wins.
func (d *daemon) vmGroup(name string) (dir string, v2 bool, err error) {
	roots := []string{"/sys/fs/cgroup"}
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		v2 = true
	} else if roots, _ = filepath.Glob("/sys/fs/cgroup/*cpuacct*"); len(roots) == 0 {
		return "", false, errors.New("no cpuacct hierarchy under /sys/fs/cgroup")
	}
	seen := 0
	for _, r := range roots {
		base := filepath.Join(r, d.cgroupBase, "vm")
		filepath.WalkDir(base, func(p string, e os.DirEntry, err error) error {
			if err != nil || !e.IsDir() {
				return nil
			}
			if seen++; seen > maxGroupWalk {
				return filepath.SkipAll
			}
			if p == base || e.Name() != name {
				return nil
			}
			if dir == "" {
				dir = p
			}
			if b, err := os.ReadFile(filepath.Join(p, "cgroup.procs")); err == nil && len(strings.TrimSpace(string(b))) > 0 {
				dir = p
				return filepath.SkipAll
			}
			return filepath.SkipDir
		})
		if dir != "" {
			return dir, v2, nil
		}
	}
	return "", v2, fmt.Errorf("vm %s has no CPU accounting group below %s/vm", name, d.cgroupBase)
}

// setBaseShares writes the CPU weight of the daemon's base group, which
// competes at the top level with everything else on the host. The base
// is this benchmark's own (benchrun.CgroupBase), never the host's.
func (d *daemon) setBaseShares(shares int64) error {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		w := min(max(shares*100/1024, 1), 10000)
		return os.WriteFile(filepath.Join("/sys/fs/cgroup", d.cgroupBase, "cpu.weight"), []byte(strconv.FormatInt(w, 10)), 0)
	}
	dirs, _ := filepath.Glob("/sys/fs/cgroup/cpu,cpuacct/" + d.cgroupBase)
	if len(dirs) == 0 {
		dirs, _ = filepath.Glob("/sys/fs/cgroup/cpu/" + d.cgroupBase)
	}
	if len(dirs) == 0 {
		return fmt.Errorf("no cpu group %s to set cpu.shares on", d.cgroupBase)
	}
	return os.WriteFile(filepath.Join(dirs[0], "cpu.shares"), []byte(strconv.FormatInt(shares, 10)), 0)
}
