package hostcheck

import (
	"bufio"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/bulwark-project/bulwark/internal/hv"
	"github.com/bulwark-project/bulwark/internal/install"
)

// Gather probes this host as the calling user. It needs no daemon and
// changes nothing: hv.ProbeKVM creates and closes one empty VM, and the
// system-call probes only open and close descriptors of this process.
func Gather() Probe {
	p := Probe{
		EUID:       os.Geteuid(),
		KVM:        hv.ProbeKVM(),
		Cgroup:     probeCgroup("/sys/fs/cgroup"),
		Seccomp:    probeSeccomp(),
		Namespaces: map[string]bool{},
		Sysctls:    map[string]Sysctl{},
		TPM:        probeTPM(),
		Systemd:    probeSystemd(),
	}
	for _, n := range []string{"mnt", "pid", "net", "ipc", "uts", "cgroup", "user", "time"} {
		_, err := os.Lstat("/proc/self/ns/" + n)
		p.Namespaces[n] = err == nil
	}
	for _, name := range SysctlNames {
		b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(name, ".", "/"))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		p.Sysctls[name] = Sysctl{Value: strings.TrimSpace(string(b)), Err: err}
	}
	p.Openat2Err = probeOpenat2()
	p.PidfdOpenErr, p.PidfdGetfdErr = probePidfd()
	return p
}

// v1Controllers are the cgroup v1 hierarchies worth listing.
var v1Controllers = []string{"blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "hugetlb", "memory", "misc", "net_cls", "perf_event", "pids", "rdma"}

func probeCgroup(root string) CgroupProbe {
	var c CgroupProbe
	if b, err := os.ReadFile(filepath.Join(root, "cgroup.controllers")); err == nil {
		c.V2, c.Controllers = true, strings.Fields(string(b))
		return c
	}
	for _, n := range v1Controllers {
		// A mounted hierarchy has cgroup.procs at its top; cpu and cpuacct
		// are often symlinks to a joint "cpu,cpuacct" mount.
		if _, err := os.Stat(filepath.Join(root, n, "cgroup.procs")); err == nil {
			c.V1 = append(c.V1, n)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "unified", "cgroup.procs")); err == nil {
		c.Hybrid = true
	}
	return c
}

func probeSeccomp() SeccompProbe {
	var s SeccompProbe
	s.Mode, s.PrctlErr = unix.PrctlRetInt(unix.PR_GET_SECCOMP, 0, 0, 0, 0)
	if f, err := os.Open("/proc/self/status"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "Seccomp:") {
				s.StatusField = true
			}
		}
		f.Close()
	}
	b, err := os.ReadFile("/proc/sys/kernel/seccomp/actions_avail")
	s.Actions, s.ActionsErr = strings.Fields(string(b)), err
	return s
}

// probeOpenat2 resolves "." beneath a descriptor for "/" (an absolute path
// would escape RESOLVE_BENEATH by definition). ENOSYS means no openat2.
func probeOpenat2() error {
	root, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(root)
	fd, err := unix.Openat2(root, ".", &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return err
	}
	return unix.Close(fd)
}

// probePidfd opens a pidfd on this process and takes a copy of the pidfd
// itself through pidfd_getfd: a descriptor known to be open (stdin may not
// be), and taking from oneself passes the ptrace check whatever Yama says,
// so only the system calls' presence is tested.
func probePidfd() (openErr, getfdErr error) {
	pidfd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return err, errors.New("not tried (no pidfd)")
	}
	defer unix.Close(pidfd)
	fd, err := unix.PidfdGetfd(pidfd, pidfd, 0)
	if err != nil {
		return nil, err
	}
	unix.Close(fd)
	return nil, nil
}

func probeTPM() TPMProbe {
	var t TPMProbe
	for _, d := range []string{"/dev/tpmrm0", "/dev/tpm0"} {
		if _, err := os.Stat(d); err == nil {
			t.Devices = append(t.Devices, d)
		}
	}
	if b, err := os.ReadFile("/sys/class/tpm/tpm0/tpm_version_major"); err == nil {
		t.Version = strings.TrimSpace(string(b))
	}
	return t
}

// unitCgroups are the unit's cgroup in the v2 tree, in the hybrid layout's
// v2 tree, and in v1's named systemd hierarchy.
var unitCgroups = []string{
	"/sys/fs/cgroup/system.slice/bulwark.service",
	"/sys/fs/cgroup/unified/system.slice/bulwark.service",
	"/sys/fs/cgroup/systemd/system.slice/bulwark.service",
}

func probeSystemd() SystemdProbe {
	s := SystemdProbe{UnitPath: install.UnitPath, InvocationID: os.Getenv("INVOCATION_ID") != ""}
	if b, err := os.ReadFile("/proc/1/comm"); err == nil {
		s.PID1 = strings.TrimSpace(string(b))
	}
	if fi, err := os.Stat(install.UnitPath); err == nil && fi.Mode().IsRegular() {
		s.UnitInstalled = true
	}
	for _, dir := range unitCgroups {
		if servesIn(dir) {
			s.UnitActive = true
			break
		}
	}
	return s
}

// servesIn reports whether a `bulwark serve` process is in the cgroup dir
// or a direct child of it. VMs alone do not count: they outlive a stopped
// daemon in its cgroup (KillMode=process), and with Delegate=yes the
// daemon may have moved itself into a child cgroup.
func servesIn(dir string) bool {
	files, _ := filepath.Glob(filepath.Join(dir, "*", "cgroup.procs"))
	files = append(files, filepath.Join(dir, "cgroup.procs"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, pid := range strings.Fields(string(b)) {
			cmdline, err := os.ReadFile("/proc/" + pid + "/cmdline")
			if err != nil {
				continue
			}
			args := bytes.Split(cmdline, []byte{0})
			if len(args) > 1 && string(args[1]) == "serve" {
				return true
			}
		}
	}
	return false
}
