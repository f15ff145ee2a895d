package daemon

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/bulwark-project/bulwark/internal/audit"
)

// auditCheckpointEvery is how many records pass between signed
// checkpoints, and so how many records a crash may leave unanchored.
const auditCheckpointEvery = 100

// maxDamageLogged bounds how many problems a damaged log's start logs one
// by one; the count is always logged.
const maxDamageLogged = 20

// openAudit opens the audit log in STATE/audit with its anchor sinks, and
// decides what to do when the log fails verification: refuse to start,
// unless the operator acknowledged it with --audit-accept-damage, in which
// case the damage is recorded in the log itself and the log signs nothing
// while this daemon runs (docs/audit.md).
func openAudit(ctx context.Context, cfg Config, log *slog.Logger) (*audit.Log, error) {
	dir := filepath.Join(cfg.StateDir, "audit")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	key, err := audit.LoadOrCreateKey(dir)
	if err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	opts, err := auditSinks(cfg, key.Public().(ed25519.PublicKey), log)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	l, err := audit.Open(ctx, dir, key, auditCheckpointEvery, opts...)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	rep := l.OpenReport()
	log.Info("audit log verified at start", "records", rep.Records, "checkpoints", rep.Checkpoints,
		"anchors", rep.Anchors, "unanchored", rep.Unanchored, "problems", len(rep.Problems), "took", time.Since(start).Round(time.Millisecond))
	dmg := l.Damage()
	if len(dmg) == 0 {
		return l, nil
	}
	for i, p := range dmg {
		if i == maxDamageLogged {
			log.Error("AUDIT LOG DAMAGED: more problems not shown", "more", len(dmg)-i)
			break
		}
		log.Error("AUDIT LOG DAMAGED", "problem", p.String())
	}
	if !cfg.AuditAcceptDamage {
		l.Close() // ErrDamaged: it signs nothing, which is the point
		return nil, fmt.Errorf("audit log %s failed verification (%d problem(s), first: %s); refusing to start, "+
			"because signing a checkpoint over it would make the damage verify. Keep a copy as evidence, then either move "+
			"%s and the anchor file aside to start a new log, or start with --audit-accept-damage to run on it unsigned",
			dir, len(dmg), dmg[0], dir)
	}
	log.Error("AUDIT LOG DAMAGED: running on it (--audit-accept-damage); the damage is recorded and no checkpoint will be signed until the log is replaced",
		"problems", len(dmg))
	if _, err := l.Append(ctx, audit.DamageRecord(dmg)); err != nil {
		l.Close()
		return nil, fmt.Errorf("audit log: record its damage: %w", err)
	}
	return l, nil
}

// auditSinks builds the anchor sinks the configuration asks for: the local
// append-only file by default, syslog and HTTPS when given.
func auditSinks(cfg Config, pub ed25519.PublicKey, log *slog.Logger) ([]audit.Option, error) {
	opts := []audit.Option{audit.WithLogger(log)}
	var opened []audit.Sink // until Open takes them over
	closeAll := func() {
		for _, s := range opened {
			s.Close()
		}
	}
	path := cfg.AuditAnchorFile
	if path == "" {
		path = filepath.Join(cfg.StateDir, "audit-anchors", "anchors.jsonl")
	}
	if path == "none" {
		log.Warn("audit anchor file off (--audit-anchor-file none): a cut or rewritten log is caught only by remote sinks")
	} else {
		af, err := audit.OpenAnchorFile(path, cfg.AuditAnchorAppendOnly)
		if err != nil {
			return nil, err
		}
		opts, opened = append(opts, audit.WithAnchorFile(af)), append(opened, af)
		if ok, why := af.AppendOnly(); ok {
			log.Info("audit anchor file", "path", path, "append_only", true)
		} else {
			log.Warn("audit anchor file is not append-only (chattr +a): its owner can rewrite it", "path", path, "append_only", false, "reason", why.Error())
		}
	}
	remote := 0
	if cfg.AuditSyslog != "" {
		s, err := audit.NewSyslogSink(audit.SyslogConfig{Addr: cfg.AuditSyslog, PublicKey: pub, Log: log})
		if err != nil {
			closeAll()
			return nil, err
		}
		opts, opened = append(opts, audit.WithSink(s)), append(opened, s)
		remote++
		log.Info("audit checkpoints go to syslog", "addr", cfg.AuditSyslog)
	}
	if cfg.AuditAnchorURL != "" {
		s, err := audit.NewHTTPSSink(audit.HTTPSConfig{URL: cfg.AuditAnchorURL, CAFile: cfg.AuditAnchorCA, PublicKey: pub, Log: log})
		if err != nil {
			closeAll()
			return nil, err
		}
		opts, opened = append(opts, audit.WithSink(s)), append(opened, s)
		remote++
		log.Info("audit checkpoints go to an HTTPS receiver", "url", cfg.AuditAnchorURL)
	}
	if remote == 0 {
		log.Warn("no remote audit sink (--audit-syslog, --audit-anchor-url): root on this host can rewrite the audit log and its local anchors unseen")
	}
	return opts, nil
}
