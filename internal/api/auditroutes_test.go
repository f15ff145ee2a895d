package api

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/audit"
)

// newAuditTestServer is a test server with an audit log of five records
// and an anchor file beside it.
func newAuditTestServer(t *testing.T) (*testServer, string) {
	t.Helper()
	ts := newTestServer(t)
	dir := filepath.Join(ts.dir, "audit")
	key, err := audit.LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	af, err := audit.OpenAnchorFile(filepath.Join(ts.dir, "audit-anchors", "anchors.jsonl"), false)
	if err != nil {
		t.Fatal(err)
	}
	log, err := audit.Open(context.Background(), dir, key, 2, audit.WithAnchorFile(af))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	for _, u := range []string{"alice", "bob", "alice", "carol", "bob"} {
		if _, err := log.Append(context.Background(), audit.Record{User: u, Action: "vm.start", Object: "/vms/a", Result: audit.ResultOK, Source: "unix"}); err != nil {
			t.Fatal(err)
		}
	}
	ts.srv.SetAudit(log)
	return ts, dir
}

func TestListAuditOrder(t *testing.T) {
	ts, _ := newAuditTestServer(t)
	for _, tt := range []struct {
		query string
		want  []uint64
	}{
		{"", []uint64{5, 4, 3, 2, 1}},
		{"?order=desc&limit=2", []uint64{5, 4}},
		{"?before=4&limit=2", []uint64{3, 2}},
		{"?order=asc", []uint64{1, 2, 3, 4, 5}},
		{"?order=asc&after=3", []uint64{4, 5}},
		{"?user=bob", []uint64{5, 2}},
	} {
		rec := ts.do("GET", "/api/v1/audit"+tt.query, nil)
		var recs []audit.Record
		if err := json.Unmarshal(rec.Body.Bytes(), &recs); rec.Code != 200 || err != nil {
			t.Fatalf("%s: %d %s", tt.query, rec.Code, rec.Body)
		}
		var got []uint64
		for _, r := range recs {
			got = append(got, r.Seq)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("GET /api/v1/audit%s: seqs %v, want %v", tt.query, got, tt.want)
		}
	}
	for _, q := range []string{"?order=newest", "?before=x"} {
		if rec := ts.do("GET", "/api/v1/audit"+q, nil); rec.Code != 400 {
			t.Errorf("%s: %d %s, want 400", q, rec.Code, rec.Body)
		}
	}
}

func TestExportAuditFormats(t *testing.T) {
	ts, _ := newAuditTestServer(t)
	rec := ts.do("GET", "/api/v1/audit/export", nil)
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/x-ndjson" || strings.Count(rec.Body.String(), "\n") != 5 ||
		!strings.HasPrefix(rec.Body.String(), `{"seq":1,`) {
		t.Errorf("jsonl: %d %q %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	rec = ts.do("GET", "/api/v1/audit/export?format=syslog&user=alice", nil)
	lines := strings.Split(strings.TrimSpace(rec.Body.String()), "\n")
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") || len(lines) != 2 {
		t.Fatalf("syslog: %d %q %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "<85>1 ") || !strings.Contains(l, " bulwark - vm.start - {") || !strings.Contains(l, `"user":"alice"`) {
			t.Errorf("syslog line %q", l)
		}
	}
	if rec := ts.do("GET", "/api/v1/audit/export?format=xml", nil); rec.Code != 400 {
		t.Errorf("format=xml: %d", rec.Code)
	}
}

func TestVerifyAuditAnchors(t *testing.T) {
	ts, dir := newAuditTestServer(t)
	verify := func() map[string]any {
		rec := ts.do("GET", "/api/v1/audit/verify", nil)
		var out map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &out); rec.Code != 200 || err != nil {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		return out
	}
	out := verify()
	if out["ok"] != true || out["records"] != 5.0 || out["anchors"] != 7.0 || out["unanchored"] != 0.0 || out["signing"] != true ||
		len(out["public_key"].(string)) != 64 || len(out["anchor_files"].([]any)) != 1 {
		t.Errorf("intact log: %v", out)
	}
	// The tail cut, checkpoint rows and all: the anchors name it.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, audit.DBFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{`DELETE FROM records WHERE seq > 3`, `DELETE FROM checkpoints WHERE seq > 3`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	out = verify()
	var kinds []string
	for _, p := range out["problems"].([]any) {
		kinds = append(kinds, p.(map[string]any)["kind"].(string))
	}
	if out["ok"] != false || !slices.Contains(kinds, string(audit.KindCutTail)) {
		t.Errorf("cut log: %v", out)
	}
}
