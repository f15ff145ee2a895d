package api

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/audit"
	"github.com/bulwark-project/bulwark/internal/storage"
)

// TestSnapshotAPI: bad input, refusals, privileges and audit targets of
// the snapshot routes, on a real storage service (real qemu-img).
func TestSnapshotAPI(t *testing.T) {
	ts, log := newLoginTestServer(t)
	pool := withStorage(t, ts)
	must := func(method, path, b string, code int) string {
		t.Helper()
		rec := ts.do(method, path, body(b))
		if rec.Code != code {
			t.Fatalf("%s %s: %d %s, want %d", method, path, rec.Code, rec.Body, code)
		}
		return rec.Body.String()
	}
	must("POST", volAPI, `{"name":"d","size":1048576}`, 201)
	if rec := ts.do("POST", "/api/v1/vms", ts.spec("a", func(m map[string]any) {
		m["disks"] = []map[string]any{{"volume": "default/d"}}
	})); rec.Code != 201 {
		t.Fatal(rec.Body)
	}
	hostDisk := filepath.Join(ts.dir, "host.raw")
	os.WriteFile(hostDisk, make([]byte, 1<<20), 0o600)
	if rec := ts.do("POST", "/api/v1/vms", ts.spec("h", func(m map[string]any) {
		m["disks"] = []map[string]any{{"volume": "default/d", "read_only": true}, {"path": hostDisk}}
	})); rec.Code != 201 {
		t.Fatal(rec.Body)
	}
	const snaps = "/api/v1/vms/a/snapshots"
	for _, tc := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"POST", snaps, `{"name":"Bad/x"}`, 400, "lower-case"},
		{"POST", snaps, `{"name":""}`, 400, "empty"},
		{"POST", snaps, `{"nom":"x"}`, 400, "unknown field"},
		{"POST", snaps, `{"name":"x"} {}`, 400, "exactly one"},
		{"POST", "/api/v1/vms/nope/snapshots", `{"name":"x"}`, 404, "nope"},
		{"POST", "/api/v1/vms/h/snapshots", `{"name":"x"}`, 409, "host path " + hostDisk + " attached read-write"},
		{"GET", snaps + "/none", "", 404, "none"},
		{"POST", snaps + "/none/revert", "", 404, "none"},
		{"DELETE", snaps + "/none", "", 404, "none"},
		{"POST", snaps + "/none/restore", `{"name":"b"}`, 404, "none"},
	} {
		rec := ts.do(tc.method, tc.path, body(tc.body))
		if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.want) {
			t.Errorf("%s %s %s: %d %s, want %d with %q", tc.method, tc.path, tc.body, rec.Code, rec.Body, tc.code, tc.want)
		}
	}

	var s1 storage.Snapshot
	json.Unmarshal([]byte(must("POST", snaps, `{"name":"s1"}`, 201)), &s1)
	if s1.Disks[0].Frozen() != "default/d-snap-s1" || s1.Disks[0].Layers[0].SHA256 == "" || s1.Spec.Name != "a" {
		t.Fatalf("snapshot: %+v", s1)
	}
	must("POST", snaps, `{"name":"s1"}`, 409)
	var list []storage.Snapshot
	json.Unmarshal([]byte(must("GET", snaps, "", 200)), &list)
	if len(list) != 1 {
		t.Fatalf("list: %+v", list)
	}
	var rep storage.VerifyReport
	json.Unmarshal([]byte(must("GET", snaps+"/s1/verify", "", 200)), &rep)
	if !rep.OK {
		t.Fatalf("verify: %+v", rep)
	}
	// The audit trail names the VM and the snapshot.
	var found bool
	for _, r := range auditRecords(t, log, "") {
		if r.Action == "createSnapshot" && r.Result == audit.ResultOK && r.Object == "/vms/a" && strings.Contains(r.Detail, "took snapshot s1 of VM a") {
			found = true
		}
	}
	if !found {
		t.Errorf("no audit record of the snapshot: %+v", auditRecords(t, log, ""))
	}

	// Privileges: alice reads (ReadOnly on /vms) but cannot snapshot;
	// with VM.Snapshot she still cannot restore without VM.Create.
	tok := ts.token("alice")
	if rec := ts.as(tok, "GET", snaps, nil); rec.Code != 200 {
		t.Errorf("alice list: %d %s", rec.Code, rec.Body)
	}
	for _, p := range []struct{ method, path, body string }{
		{"POST", snaps, `{"name":"s2"}`}, {"POST", snaps + "/s1/revert", ""}, {"DELETE", snaps + "/s1", ""},
		{"POST", snaps + "/s1/restore", `{"name":"b"}`}, {"GET", snaps + "/s1/verify", ""},
	} {
		if rec := ts.as(tok, p.method, p.path, body(p.body)); rec.Code != 403 || !strings.Contains(rec.Body.String(), "VM.Snapshot") {
			t.Errorf("alice %s %s: %d %s", p.method, p.path, rec.Code, rec.Body)
		}
	}
	must("POST", "/api/v1/roles", `{"name":"snapper"}`, 201)
	must("POST", "/api/v1/roles/snapper/privileges", `{"privilege":"VM.Snapshot"}`, 200)
	must("POST", "/api/v1/permissions", `{"user":"alice","role":"snapper","path":"/vms/a"}`, 201)
	if rec := ts.as(tok, "POST", snaps+"/s1/restore", body(`{"name":"b"}`)); rec.Code != 403 || !strings.Contains(rec.Body.String(), "VM.Create on /vms") {
		t.Errorf("alice restore without VM.Create: %d %s", rec.Code, rec.Body)
	}
	if _, err := os.Stat(filepath.Join(pool, "b-disk0.qcow2")); err == nil {
		t.Error("a refused restore left a volume")
	}

	// Restore as root: a new VM on a clone of the layer, new MAC.
	out := must("POST", snaps+"/s1/restore", `{"name":"b"}`, 201)
	if !strings.Contains(out, `"volume": "default/b-disk0"`) {
		t.Errorf("restored VM: %s", out)
	}
	// Deleting s1 is refused while b is based on its layer.
	if rec := ts.do("DELETE", snaps+"/s1", nil); rec.Code != 409 || !strings.Contains(rec.Body.String(), "default/b-disk0") {
		t.Errorf("delete with a restored VM on it: %d %s", rec.Code, rec.Body)
	}

	// A tampered layer: verify reports it, restore and revert refuse it
	// naming the layer and both digests.
	f, _ := os.OpenFile(filepath.Join(pool, "d-snap-s1.qcow2"), os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte("x"))
	f.Close()
	json.Unmarshal([]byte(must("GET", snaps+"/s1/verify", "", 200)), &rep)
	if rep.OK || len(rep.Mismatches) != 1 || rep.Mismatches[0].Volume != "default/d-snap-s1" {
		t.Fatalf("verify of a tampered layer: %+v", rep)
	}
	for _, p := range []struct{ path, body string }{{snaps + "/s1/restore", `{"name":"c"}`}, {snaps + "/s1/revert", ""}} {
		rec := ts.do("POST", p.path, body(p.body))
		if rec.Code != 409 || !strings.Contains(rec.Body.String(), "default/d-snap-s1") ||
			!strings.Contains(rec.Body.String(), s1.Disks[0].Layers[0].SHA256) || !strings.Contains(rec.Body.String(), rep.Mismatches[0].Actual) {
			t.Errorf("%s on a tampered layer: %d %s", p.path, rec.Code, rec.Body)
		}
	}
}
