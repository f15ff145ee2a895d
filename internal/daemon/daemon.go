// Package daemon wires the control plane together for `bulwark serve`: the
// store, the hypervisor backend, the VM manager and the API listener. It is
// the only place that knows all of them.
package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/bulwark-project/bulwark/internal/access"
	"github.com/bulwark-project/bulwark/internal/api"
	"github.com/bulwark-project/bulwark/internal/cgroup"
	"github.com/bulwark-project/bulwark/internal/console"
	"github.com/bulwark-project/bulwark/internal/consolelog"
	"github.com/bulwark-project/bulwark/internal/hostcheck"
	"github.com/bulwark-project/bulwark/internal/hv"
	"github.com/bulwark-project/bulwark/internal/hv/qemu"
	"github.com/bulwark-project/bulwark/internal/imagestore"
	"github.com/bulwark-project/bulwark/internal/jail"
	"github.com/bulwark-project/bulwark/internal/manager"
	"github.com/bulwark-project/bulwark/internal/netsw"
	"github.com/bulwark-project/bulwark/internal/safefs"
	"github.com/bulwark-project/bulwark/internal/storage"
	"github.com/bulwark-project/bulwark/internal/store"
	"github.com/bulwark-project/bulwark/internal/tlsca"
	"github.com/bulwark-project/bulwark/internal/vm"
	"github.com/bulwark-project/bulwark/internal/vmi/monitor"
)

// Config is `bulwark serve`'s configuration; every field has a documented
// default in cmd/bulwark.
type Config struct {
	Socket        string
	Listen        string // HTTPS on TCP ("" = Unix socket only)
	TLSCert       string // operator-supplied certificate (else Bulwark's CA issues one)
	TLSKey        string
	StateDir      string
	RunDir        string
	QEMU          string
	UIDBase       int
	ConsoleLogMax int64
	ConsoleKeep   int
	StopTimeout   time.Duration
	// Console broker defaults (a VM's console policy may override the
	// first two).
	ConsoleIdle         time.Duration
	ConsoleMaxDuration  time.Duration
	ConsoleRetention    time.Duration
	ConsoleRecordingMax int64
	// MonitorUID is the uid (and gid) of the introspection process.
	MonitorUID int
	// MonitorExe replaces the monitor program (tests run a hostile one).
	MonitorExe string
	// NoJail runs hypervisors unjailed (development and benchmarks).
	NoJail bool
	// VMMemOverheadMiB and VMPidsMax are the per-VM cgroup limits beyond
	// guest RAM (0: the manager's defaults).
	VMMemOverheadMiB int
	VMPidsMax        int
	// ImageDirs hold the kernels, initrds and disks any VM creator may
	// use; other host paths need VM.HostPaths (default: STATE/images).
	ImageDirs []string
	// StoragePools maps extra storage pool names to directories; the
	// "default" pool is STATE/storage/default unless named here.
	StoragePools map[string]string
	// CgroupBase is the group (in every hierarchy) the daemon's VM and
	// monitor groups live under: BASE/vm/NAME, BASE/monitor.
	CgroupBase string
	Version    string
	Commit     string
	// Audit anchoring (docs/audit.md). AuditAnchorFile is the local anchor
	// file ("": STATE/audit-anchors/anchors.jsonl; "none": off), made
	// append-only when AuditAnchorAppendOnly; AuditSyslog and
	// AuditAnchorURL (its CA in AuditAnchorCA) send checkpoints off the
	// host ("": off). AuditAcceptDamage starts on a log that failed
	// verification, recording that and signing nothing.
	AuditAnchorFile       string
	AuditAnchorAppendOnly bool
	AuditSyslog           string
	AuditAnchorURL        string
	AuditAnchorCA         string
	AuditAcceptDamage     bool
	// TPM selects measured launch's TPM (ParseTPM): "none" (the default
	// in cmd/bulwark: the log is kept, nothing is hardware-rooted),
	// "device", "device:PATH" or "swtpm:SOCKET".
	TPM string
	// AttestNoEnforce lets VMs start on a host a verifier marked
	// untrusted (default: refused).
	AttestNoEnforce bool
	// ReservedCPUMilli and ReservedMemoryMiB are the host slice kept out
	// of the root resource pool (0: the defaults).
	ReservedCPUMilli  int64
	ReservedMemoryMiB int64
	// RuntimeCheckInterval is the mean time between re-measurements of
	// the daemon's and every QEMU's code (runtimecheck.go); 0 disables
	// them, with a warning.
	RuntimeCheckInterval time.Duration
}

// Run serves until ctx is cancelled, then shuts down cleanly, leaving VMs
// running for the next daemon to re-attach.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	closeInheritedOnExec()
	st, err := store.Open(ctx, cfg.StateDir)
	if err != nil {
		return err
	}
	defer st.Close()

	probe := hv.ProbeKVM()
	auto, _ := hv.Decide("auto", probe)
	log.Info("accelerator", "auto", auto.Name, "reason", auto.Reason)
	if q := dgramQlen(); q >= 0 && q < hostcheck.MinDgramQlen {
		log.Warn("net.unix.max_dgram_qlen is low: switch ports will drop bursts; set it to 512 (sysctl -w net.unix.max_dgram_qlen=512)", "value", q)
	}
	accel := func(req string) (hv.Accel, error) { return hv.Decide(req, probe) }

	cg, err := cgroup.Detect()
	if err != nil {
		return fmt.Errorf("cgroups (every VM gets a memory and pids cap): %w", err)
	}
	log.Info("cgroups", "version", int(cg.Version()), "controllers", cg.Controllers())
	jailRoot := ""
	if !cfg.NoJail {
		// The mount point of every jail's private root; only used inside
		// each jail's own mount namespace.
		jailRoot = filepath.Join(cfg.RunDir, "jail")
		if err := os.MkdirAll(jailRoot, 0o700); err != nil {
			return err
		}
	} else {
		log.Warn("hypervisors run WITHOUT the jail (--unsafe-no-jail): a VM escape reaches the host's file system and system calls")
	}
	mgr, err := manager.New(st, qemu.New(cfg.QEMU, jailRoot), accel, manager.Config{
		RunRoot: filepath.Join(cfg.RunDir, "vms"), LogRoot: filepath.Join(cfg.StateDir, "logs"),
		UIDBase: cfg.UIDBase, ConsoleLogMax: cfg.ConsoleLogMax, ConsoleKeep: cfg.ConsoleKeep,
		StopTimeout: cfg.StopTimeout, MemOverheadMiB: cfg.VMMemOverheadMiB, PidsMax: cfg.VMPidsMax,
	}, log)
	if err != nil {
		return err
	}
	defer mgr.Close()
	if cfg.CgroupBase == "" {
		cfg.CgroupBase = "bulwark"
	}
	cgset := &manager.CgroupSet{H: cg, Base: cfg.CgroupBase + "/vm"}
	mgr.SetCgroups(cgset)
	// Resource pools: admission at every start, cgroups mirroring the
	// pool tree.
	rpools, err := startPools(ctx, cfg, st, mgr, cgset, log)
	if err != nil {
		return err
	}
	images := imagestore.Store{Dir: filepath.Join(cfg.StateDir, "images")}
	mgr.SetImageCheck(func(spec vm.Spec) error { return images.CheckBoot(spec.Image, spec.Kernel, spec.Initrd) })
	mgr.SetImageRetarget(api.ImageRetarget(images))
	meas, closeMeas, err := startMeasuredLaunch(cfg, mgr, log)
	if err != nil {
		return fmt.Errorf("measured launch: %w", err)
	}
	defer closeMeas()

	// The virtual switch: ports of running VMs are re-created by Recover
	// below, so the switch must exist first.
	fwPath := filepath.Join(cfg.StateDir, "logs", "firewall.jsonl")
	fwLog, err := consolelog.Open(fwPath, consolelog.DefaultMaxSize, consolelog.DefaultKeep)
	if err != nil {
		return err
	}
	defer fwLog.Close()
	sw := netsw.New(log, netsw.NewEventLog(fwLog, 100))
	defer sw.Close()
	netSvc, err := netsw.NewService(ctx, sw, st, filepath.Join(cfg.RunDir, "sw"), log)
	if err != nil {
		return fmt.Errorf("virtual switch: %w", err)
	}
	// The IPS and mirror stages of the switch (ips.go), before any VM port
	// exists, so no frame passes uninspected on an inspected network.
	nsec, closeNsec, err := startNetSecurity(ctx, cfg, sw, st, log)
	if err != nil {
		return err
	}
	// The ports close first, so no frame passes while the inspection
	// stages (and a quarantine among them) are taken down.
	defer func() {
		sw.Close()
		closeNsec()
	}()
	// The audit log: every mutating API call, with who, what, object,
	// result and source, hash-chained with signed checkpoints and anchored
	// outside its database; verified before anything is recorded.
	auditLog, err := openAudit(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := auditLog.Close(); err != nil {
			log.Error("AUDIT LOG CLOSE", "err", err)
		}
	}()

	// Automatic responses to introspection findings (respond.go): stored
	// quarantines are re-applied before Recover re-creates the VMs' ports.
	resp, err := newResponder(ctx, cfg.StateDir, st, mgr, sw, auditLog, rpools.svc.Tree, log)
	if err != nil {
		return err
	}

	// The console broker: output of running VMs flows into it from the
	// manager's console pumps, so it must exist before Recover.
	conDefaults := console.DefaultPolicy()
	conDefaults.IdleTimeout, conDefaults.MaxDuration = cfg.ConsoleIdle, cfg.ConsoleMaxDuration
	broker, err := console.New(console.Config{RecordDir: filepath.Join(cfg.StateDir, "recordings"),
		MaxRecording: cfg.ConsoleRecordingMax, Retention: cfg.ConsoleRetention}, mgr,
		api.ConsoleAuditor(auditLog, func(err error) { log.Error("AUDIT APPEND FAILED", "op", "console", "err", err) }))
	if err != nil {
		return fmt.Errorf("console broker: %w", err)
	}
	defer broker.Close()
	mgr.SetConsoleSink(broker)

	mgr.SetNetwork(netSvc)
	vols, err := openStorage(ctx, cfg, st, mgr, log)
	if err != nil {
		return err
	}
	defer vols.Close()
	if err := mgr.Recover(ctx); err != nil {
		return fmt.Errorf("recover VMs: %w", err)
	}

	reg := prometheus.NewRegistry()
	usage := &usageSampler{cg: cgset, sw: sw, mgr: mgr, svc: rpools.svc}
	go usage.run(ctx)
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), mgr, sw, usage, nsec.metrics())
	host, _ := os.Hostname()
	srv := api.New(mgr, api.Info{
		Version: cfg.Version, Commit: cfg.Commit, GoVersion: runtime.Version(), Backend: "qemu",
		Accel: auto, Hostname: host, StateDir: cfg.StateDir,
	}, reg, log)
	srv.SetNetwork(netSvc, fwPath)
	nsec.wire(srv)
	srv.SetStorage(vols)
	srv.SetPools(&api.Pools{Svc: rpools.svc, Reconcile: rpools.Reconcile, Usage: usage.Usage})
	if len(cfg.ImageDirs) == 0 {
		cfg.ImageDirs = []string{filepath.Join(cfg.StateDir, "images")}
	}
	srv.SetImageDirs(cfg.ImageDirs)
	srv.SetAudit(auditLog)
	acc, err := access.New(ctx, st)
	if err != nil {
		return fmt.Errorf("access control: %w", err)
	}
	srv.SetAccess(acc)
	if err := srv.RefreshInherit(ctx); err != nil {
		return fmt.Errorf("resource pools: permission inheritance: %w", err)
	}
	srv.SetConsole(broker, conDefaults)
	srv.SetAttestation(meas)
	// Runtime integrity (runtimecheck.go): the daemon's and each QEMU's
	// code re-measured against the files on disk; findings go to PCR 13
	// and, through Latest, into the attestation report.
	runtimeChecker, err := startRuntimeChecker(ctx, cfg, mgr, meas, log)
	if err != nil {
		return err
	}
	defer runtimeChecker.Stop()
	closeAgent, err := startAttestAgent(cfg, meas, mgr, srv, runtimeChecker.Latest, log)
	if err != nil {
		return err
	}
	defer closeAgent()
	stopVMI, err := startIntrospection(ctx, cfg, mgr, srv, cg, jailRoot, resp, log)
	if err != nil {
		return fmt.Errorf("introspection: %w", err)
	}
	defer stopVMI()
	// Console sessions re-check their rights on every access change.
	go func() {
		ch := acc.Subscribe()
		for {
			select {
			case <-ch:
				broker.Recheck()
			case <-ctx.Done():
				return
			}
		}
	}()

	ln, err := ListenUnix(cfg.Socket)
	if err != nil {
		return err
	}
	hs := apiHTTPServer(srv, log)
	errc := make(chan error, 2)
	go func() { errc <- hs.Serve(ln) }()
	if cfg.Listen != "" {
		tcp, err := listenTLS(cfg)
		if err != nil {
			ln.Close()
			return err
		}
		hts := apiHTTPServer(srv, log)
		go func() { errc <- hts.Serve(tcp) }()
		defer hts.Close()
		log.Info("bulwark serving HTTPS", "listen", tcp.Addr().String(), "ca", filepath.Join(cfg.StateDir, "tls", tlsca.CACert))
	}
	log.Info("bulwark serving", "socket", cfg.Socket, "state_dir", cfg.StateDir, "run_dir", cfg.RunDir)

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down; VMs keep running")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = hs.Shutdown(sctx)
	os.Remove(cfg.Socket)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// apiHTTPServer is the server configuration used for every API listener.
var apiHTTPServer = api.NewHTTPServer

// ListenUnix listens on a Unix socket that only the owner can use (0600). A
// stale socket from a dead daemon is replaced; a live one is an error.
func ListenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o711); err != nil {
		return nil, err
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return nil, fmt.Errorf("another daemon is listening on %s", path)
	}
	os.Remove(path)
	// The umask makes the socket 0600 from the moment it exists; there is no
	// window in which another user could connect.
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// listenTLS opens the HTTPS listener. Over TCP nobody is trusted by
// transport: every request needs a token.
func listenTLS(cfg Config) (net.Listener, error) {
	host, _, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("--listen %q: %w", cfg.Listen, err)
	}
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if name, err := os.Hostname(); err == nil {
		hosts = append(hosts, name)
	}
	if host != "" && host != "0.0.0.0" && host != "::" {
		hosts = append(hosts, host)
	}
	tc, err := tlsca.ServerConfig(filepath.Join(cfg.StateDir, "tls"), hosts, cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, err
	}
	return tls.Listen("tcp", cfg.Listen, tc)
}

// startIntrospection starts the monitor process lazily (on first use) as
// its own uid, records findings as events and scans VMs that ask for
// periodic scans.
func startIntrospection(ctx context.Context, cfg Config, mgr *manager.Manager, srv *api.Server, cg *cgroup.Hierarchy, jailRoot string, resp *responder, log *slog.Logger) (func(), error) {
	// Unjailed: /proc/self/exe, not the binary's path: the monitor's uid
	// may not be able to traverse to it (a checkout under /root), and the
	// magic link needs no path walk. Jailed: the binary's path, bound
	// read-only into the monitor's root.
	exe := "/proc/self/exe"
	if jailRoot != "" {
		p, err := os.Executable()
		if err != nil {
			return nil, err
		}
		if exe, err = filepath.EvalSymlinks(p); err != nil {
			return nil, err
		}
	}
	if cfg.MonitorExe != "" {
		exe = cfg.MonitorExe
	}
	uid := cfg.MonitorUID
	if uid <= 0 {
		uid = cfg.UIDBase - 1
	}
	// The profile cache lives in the run directory (0711, traversable by
	// the VM and monitor uids), not in the 0700 state directory the monitor
	// must not reach; a lost cache only costs a re-derivation.
	cache := filepath.Join(cfg.RunDir, "vmi-cache")
	if err := monitorCache(cfg.RunDir, "vmi-cache", uid); err != nil {
		return nil, fmt.Errorf("monitor cache %s: %w", cache, err)
	}
	monLog, err := consolelog.Open(filepath.Join(cfg.StateDir, "logs", "monitor.log"), consolelog.DefaultMaxSize, consolelog.DefaultKeep)
	if err != nil {
		return nil, err
	}
	proc := &monitor.Process{Exe: exe, Args: []string{"monitor", "--cache", cache}, UID: uid, GID: uid, Log: log, Stderr: monLog}
	if jailRoot != "" {
		spec, err := monitorJail(exe, cache, jailRoot)
		if err != nil {
			return nil, err
		}
		proc.Jail = &spec
	}
	// The monitor's own cgroup: whatever an earlier daemon's monitor left
	// is killed first.
	monitorCgroup := cfg.CgroupBase + "/monitor"
	if g, err := cg.Open(monitorCgroup); err == nil {
		g.Kill(ctx)
		g.Remove()
	}
	mg, err := cg.Create(monitorCgroup, cgroup.Limits{MemoryMax: monitorMemoryMax, PidsMax: monitorPidsMax})
	if err != nil {
		return nil, fmt.Errorf("monitor cgroup: %w", err)
	}
	proc.Place = mg.Add
	evPath := filepath.Join(cfg.StateDir, "logs", "monitor-events.jsonl")
	evLog, err := consolelog.Open(evPath, consolelog.DefaultMaxSize, consolelog.DefaultKeep)
	if err != nil {
		return nil, err
	}
	gw := &monitor.Gateway{Proc: proc, Src: mgr}
	srv.SetIntrospection(resp.gateway(gw, srv.RecordEvent), api.NewEvents(evLog, evPath))
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		periodicScans(sctx, mgr, srv, gw, log)
	}()
	return func() {
		cancel()
		<-done
		proc.Close()
		evLog.Close()
		monLog.Close()
	}, nil
}

// monitorCache makes the monitor's cache directory (its uid's) in the run
// directory, through safefs: the monitor owns what is inside it, so
// nothing there is followed.
func monitorCache(runDir, name string, uid int) error {
	if err := os.MkdirAll(runDir, 0o711); err != nil {
		return err
	}
	d, err := safefs.OpenDir(runDir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Mkdir(name, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return d.Chown(name, uid, uid)
}

// The monitor's cgroup and limits: it maps guest RAM (charged to the VM)
// and derives kernel profiles (a decompressed kernel, BTF), so its own
// memory stays well under a GiB.
const (
	monitorMemoryMax = 1 << 30
	monitorPidsMax   = 64
)

// monitorJail is the monitor's jail: its binary and libraries, its cache
// directory (read-write), /dev/null and /dev/urandom, a /proc of its own
// PID namespace (it reads the kernel image through /proc/self/fd), no
// network, the "monitor" seccomp allow list.
func monitorJail(exe, cache, jailRoot string) (jail.Spec, error) {
	binds, links, err := jail.ProgramBinds(exe)
	if err != nil {
		return jail.Spec{}, err
	}
	binds = append(binds, jail.Bind{Path: cache, Dir: true, Writable: true},
		jail.Bind{Path: "/dev/null", Device: true}, jail.Bind{Path: "/dev/urandom", Device: true})
	return jail.Spec{Name: "monitor", Root: jailRoot, Env: []string{"PATH=/usr/bin:/bin"},
		Binds: binds, Symlinks: links, Proc: true, Seccomp: "monitor",
		Rlimits: jail.Rlimits{NoFile: 256, NProc: monitorPidsMax, FSize: 256 << 20}}, nil
}

// periodicScans checks every running VM with a monitor_interval when its
// interval has passed.
func periodicScans(ctx context.Context, mgr *manager.Manager, srv *api.Server, gw *monitor.Gateway, log *slog.Logger) {
	last := map[string]time.Time{}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		gw.Sweep(ctx)
		vms, err := mgr.List(ctx)
		if err != nil {
			continue
		}
		for _, v := range vms {
			d, err := time.ParseDuration(v.Spec.MonitorInterval)
			if err != nil || d <= 0 || v.State != vm.Running {
				continue
			}
			if time.Since(last[v.Spec.Name]) < d {
				continue
			}
			last[v.Spec.Name] = time.Now()
			sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			rep, err := srv.Scan(sctx, v.Spec.Name, "periodic")
			cancel()
			if err != nil {
				log.Debug("periodic scan", "vm", v.Spec.Name, "err", err)
				continue
			}
			for _, ev := range rep.New {
				log.Warn("introspection finding", "vm", ev.VM, "kind", ev.Kind, "summary", ev.Summary)
			}
		}
	}
}

// openStorage opens the storage pools (STATE/storage/default and any
// --storage-pool) and connects them to the manager both ways: volumes for
// disks, the manager's definitions for "in use".
func openStorage(ctx context.Context, cfg Config, st *store.Store, mgr *manager.Manager, log *slog.Logger) (*storage.Service, error) {
	pools := map[string]string{storage.DefaultPool: filepath.Join(cfg.StateDir, "storage", storage.DefaultPool)}
	for name, dir := range cfg.StoragePools {
		pools[name] = dir
	}
	if err := os.MkdirAll(filepath.Join(cfg.StateDir, "storage"), 0o700); err != nil {
		return nil, err
	}
	vols, err := storage.New(ctx, st, storage.Config{Pools: pools, Log: log})
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	mgr.SetVolumes(vols)
	vols.SetUsers(mgr.VolumeUsers)
	return vols, nil
}
