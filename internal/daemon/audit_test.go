package daemon

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/audit"
)

// TestOpenAuditRefusesDamage: a log whose tail was cut while the daemon
// was down stops the start, naming the problem; with --audit-accept-damage
// the daemon runs on it, records the damage and signs nothing.
func TestOpenAuditRefusesDamage(t *testing.T) {
	ctx := context.Background()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	cfg := Config{StateDir: t.TempDir()}
	l, err := openAudit(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := l.Append(ctx, audit.Record{User: "root", Action: "vm.start", Result: audit.ResultOK, Source: "unix"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"anchors.jsonl", "append_only=false", "no remote audit sink"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("start log lacks %q:\n%s", want, logs.String())
		}
	}

	db, err := sql.Open("sqlite", "file:"+filepath.Join(cfg.StateDir, "audit", audit.DBFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{`DELETE FROM records WHERE seq > 2`, `DELETE FROM checkpoints WHERE seq > 2`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	logs.Reset()
	if _, err := openAudit(ctx, cfg, log); err == nil || !strings.Contains(err.Error(), "refusing to start") ||
		!strings.Contains(err.Error(), string(audit.KindCutTail)) {
		t.Fatalf("damaged log opened: %v", err)
	}
	if !strings.Contains(logs.String(), "AUDIT LOG DAMAGED") {
		t.Errorf("damage not logged:\n%s", logs.String())
	}

	cfg.AuditAcceptDamage = true
	l, err = openAudit(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := l.List(ctx, audit.Filter{Desc: true, Limit: 1})
	if err != nil || len(recs) != 1 || recs[0].Action != audit.ActionDamaged || !strings.Contains(recs[0].Detail, "seq 3: "+string(audit.KindCutTail)) {
		t.Errorf("damage record %+v, %v", recs, err)
	}
	if err := l.Close(); !errors.Is(err, audit.ErrDamaged) {
		t.Errorf("Close: %v, want ErrDamaged", err)
	}
}

func TestAuditSinksRefuseBadConfig(t *testing.T) {
	log := slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))
	for _, cfg := range []Config{
		{AuditSyslog: "localhost:514"},
		{AuditAnchorURL: "http://receiver/anchors"},
		{AuditAnchorURL: "https://receiver/anchors", AuditAnchorCA: "/nonexistent/ca.pem"},
	} {
		cfg.StateDir = t.TempDir()
		if _, err := openAudit(context.Background(), cfg, log); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}
