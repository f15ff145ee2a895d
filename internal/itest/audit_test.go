package itest

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"
)

// TestAuditTrail: mutating calls are recorded with who, what, object,
// result and source; `audit verify` passes, then names a record edited
// behind the daemon's back.
func TestAuditTrail(t *testing.T) {
	h := newHost(t)
	h.createVM("aud")
	h.cli("vm", "pause", "aud") // refused: not running -> recorded as failed
	h.mustCLI(nil, "vm", "delete", "aud")

	var all, recs []map[string]any
	h.mustCLI(&all, "audit", "list", "--object", "/vms/aud")
	intents := 0
	for _, r := range all {
		switch {
		case r["result"] == "intent":
			intents++ // recorded before the change is attempted
		case r["action"] != "createVM": // the create's outcome names the VM it made (below)
			recs = append(recs, r)
		}
	}
	if len(recs) != 2 || intents != 2 {
		t.Fatalf("audit records for /vms/aud: %d outcomes and %d intents, want 2 and 2 (pause, delete): %v", len(recs), intents, all)
	}
	// Newest first.
	want := []struct{ action, result string }{{"deleteVM", "ok"}, {"pauseVM", "failed"}}
	for i, w := range want {
		r := recs[i]
		if r["action"] != w.action || r["result"] != w.result || r["user"] != "root" || r["source"] != "unix" {
			t.Errorf("record %d = %v, want %s/%s by root over unix", i, r, w.action, w.result)
		}
	}
	// The create is recorded on the VM it made, with what it made.
	h.mustCLI(&recs, "audit", "list", "--object", "/vms")
	if len(recs) != 1 || recs[0]["action"] != "createVM" || recs[0]["result"] != "intent" {
		t.Errorf("create intent not recorded on /vms: %v", recs)
	}
	if len(all) == 0 || all[len(all)-1]["action"] != "createVM" || !strings.Contains(fmt.Sprint(all[len(all)-1]["detail"]), "created VM aud") {
		t.Errorf("create outcome not recorded on /vms/aud: %v", all)
	}
	out, _, err := h.cli("audit", "export")
	if err != nil || len(strings.Split(strings.TrimSpace(out), "\n")) < 3 {
		t.Fatalf("export: %v\n%s", err, out)
	}
	if _, _, err := h.cli("audit", "verify"); err != nil {
		t.Fatalf("verify of an untouched log failed: %v", err)
	}

	// Edit the delete record in the database directly.
	db, err := sql.Open("sqlite", filepath.Join(h.dir, "state", "audit", "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE records SET result = 'denied' WHERE action = 'deleteVM'`); err != nil {
		t.Fatal(err)
	}
	stdout, _, err := h.cli("audit", "verify", "-o", "json")
	if err == nil {
		t.Fatal("verify passed on an edited log")
	}
	var rep struct {
		OK       bool `json:"ok"`
		Problems []struct {
			Seq  uint64 `json:"seq"`
			Kind string `json:"kind"`
		} `json:"problems"`
	}
	if json.Unmarshal([]byte(stdout), &rep) != nil || len(rep.Problems) == 0 || !strings.Contains(rep.Problems[0].Kind, "edited") {
		t.Fatalf("verify did not name the edited record: %s", stdout)
	}
	t.Logf("verify: %+v", rep.Problems)
}
