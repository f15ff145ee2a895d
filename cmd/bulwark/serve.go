package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-project/bulwark/internal/client"
	"github.com/bulwark-project/bulwark/internal/consolelog"
	"github.com/bulwark-project/bulwark/internal/daemon"
)

// DefaultUIDBase: when the daemon runs as root, VM n's QEMU runs as uid and
// gid DefaultUIDBase+n, a range no distribution allocates.
const DefaultUIDBase = 2_000_000_000

func serveCmd() *cobra.Command {
	cfg := daemon.Config{}
	var logLevel, logFormat string
	var attestEnforce bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the control-plane daemon",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := newLogger(logLevel, logFormat)
			if err != nil {
				return err
			}
			cfg.Socket = client.SocketFromEnv(cmd.Flag("socket").Value.String())
			cfg.Version, cfg.Commit = version, commit
			cfg.AttestNoEnforce = !attestEnforce
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			return daemon.Run(ctx, cfg, log)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Listen, "listen", "", "also serve HTTPS on this TCP address, e.g. 127.0.0.1:8443 (tokens required; off by default)")
	f.StringVar(&cfg.TLSCert, "tls-cert", "", "certificate for --listen (default: issued by Bulwark's own CA in STATE-DIR/tls)")
	f.StringVar(&cfg.TLSKey, "tls-key", "", "key for --tls-cert")
	f.StringVar(&cfg.StateDir, "state-dir", "/var/lib/bulwark", "database, console logs and images")
	f.StringVar(&cfg.RunDir, "run-dir", "/run/bulwark", "per-VM run directories (root-only: QMP, console and NIC sockets, hypervisor logs)")
	f.StringVar(&cfg.QEMU, "qemu", "qemu-system-x86_64", "QEMU binary")
	f.IntVar(&cfg.UIDBase, "vm-uid-base", DefaultUIDBase, "as root, run VM n's hypervisor as uid/gid base+n (0: keep the daemon's uid)")
	f.Int64Var(&cfg.ConsoleLogMax, "console-log-max", consolelog.DefaultMaxSize, "bytes per console log file before rotation")
	f.IntVar(&cfg.ConsoleKeep, "console-log-keep", consolelog.DefaultKeep, "rotated console log files kept per VM")
	f.DurationVar(&cfg.StopTimeout, "stop-timeout", 30*time.Second, "default wait for a guest to power off before it is killed")
	f.DurationVar(&cfg.ConsoleIdle, "console-idle-timeout", 15*time.Minute, "default: a console session with no input for this long ends (per-VM policy may change it)")
	f.DurationVar(&cfg.ConsoleMaxDuration, "console-max-duration", 8*time.Hour, "default maximum length of a console session (per-VM policy may change it)")
	f.DurationVar(&cfg.ConsoleRetention, "console-retention", 90*24*time.Hour, "console recordings older than this are deleted (0 keeps them)")
	f.Int64Var(&cfg.ConsoleRecordingMax, "console-recording-max", 64<<20, "bytes per console recording; output beyond it is not recorded (a marker says so)")
	f.BoolVar(&cfg.NoJail, "unsafe-no-jail", false, "run hypervisors without the jail (no namespaces, seccomp allow list or rlimits; cgroups still apply): development and benchmarks only")
	f.IntVar(&cfg.VMMemOverheadMiB, "vm-memory-overhead", 0, "MiB added to a VM's RAM for its cgroup's hard memory cap (0: 256)")
	f.IntVar(&cfg.VMPidsMax, "vm-pids-max", 0, "pids.max of each VM's cgroup, the hypervisor's threads (0: 128)")
	f.StringArrayVar(&cfg.ImageDirs, "image-dir", nil, "directory whose kernels, initrds and disks any user with VM.Create may use (repeatable; default STATE-DIR/images); other host paths need VM.HostPaths on /")
	f.StringToStringVar(&cfg.StoragePools, "storage-pool", nil, "extra storage pool NAME=DIR (repeatable; the directory is made root 0700; the default pool is STATE-DIR/storage/default)")
	f.StringVar(&cfg.TPM, "tpm", "none", "TPM for measured launch (PCR 11 host layer, PCR 12 VM launches; docs/attestation.md): none (log only, nothing hardware-rooted), device, device:PATH (default /dev/tpmrm0), swtpm:SOCKET")
	f.DurationVar(&cfg.RuntimeCheckInterval, "runtime-check-interval", daemon.DefaultRuntimeCheckInterval, "mean time between re-measurements of the daemon's and each QEMU's code against the files on disk (randomised ±50%; mismatches extend PCR 13); 0 disables them")
	f.Int64Var(&cfg.ReservedCPUMilli, "host-reserved-cpu", daemon.DefaultReservedCPUMilli, "millicores of the host kept out of the root resource pool for Bulwark itself and the host (docs/pools.md)")
	f.Int64Var(&cfg.ReservedMemoryMiB, "host-reserved-memory", daemon.DefaultReservedMemoryMiB, "MiB of the host's memory kept out of the root resource pool")
	f.BoolVar(&attestEnforce, "attest-enforce", true, "refuse VM starts while a verifier's latest verdict says this host is untrusted")
	f.StringVar(&cfg.CgroupBase, "cgroup-base", "bulwark", "cgroup (in every hierarchy) that holds BASE/vm/NAME for each VM and BASE/monitor")
	f.StringVar(&cfg.AuditAnchorFile, "audit-anchor-file", "", "append-only file of audit record heads and signed checkpoints, checked at start and by audit verify (default STATE-DIR/audit-anchors/anchors.jsonl; \"none\": off)")
	f.BoolVar(&cfg.AuditAnchorAppendOnly, "audit-anchor-append-only", true, "set the append-only attribute (chattr +a) on the audit anchor file where the file system allows")
	f.StringVar(&cfg.AuditSyslog, "audit-syslog", "", "also send each signed audit checkpoint as an RFC 5424 message to /dev/log (any socket path), udp://HOST:PORT or tcp://HOST:PORT (off by default)")
	f.StringVar(&cfg.AuditAnchorURL, "audit-anchor-url", "", "also POST each signed audit checkpoint as JSON to this https:// URL (off by default)")
	f.StringVar(&cfg.AuditAnchorCA, "audit-anchor-ca", "", "PEM CA certificates that sign --audit-anchor-url's server certificate (default: the system roots)")
	f.BoolVar(&cfg.AuditAcceptDamage, "audit-accept-damage", false, "start even if the audit log fails verification: the damage is recorded in the log, and no checkpoint is signed while it runs")
	f.StringVar(&cfg.MonitorExe, "monitor-exe", "", "program run as the introspection monitor (default: this binary); tests only")
	f.MarkHidden("monitor-exe")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "json", "json or text")
	return cmd
}

func newLogger(level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: must be json or text", format)
}
