package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/storage"
)

// withStorage gives a test server a real storage service (real qemu-img,
// the test's store) wired to the manager as the daemon does.
func withStorage(t *testing.T, ts *testServer) string {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed (Debian package qemu-utils)")
	}
	pool := filepath.Join(ts.dir, "pool")
	svc, err := storage.New(context.Background(), ts.st, storage.Config{Pools: map[string]string{storage.DefaultPool: pool}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	ts.mgr.SetVolumes(svc)
	svc.SetUsers(ts.mgr.VolumeUsers)
	ts.srv.SetStorage(svc)
	return pool
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// imgBytes makes an image with the real qemu-img.
func imgBytes(t *testing.T, args ...string) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "img")
	a := append(append([]string{"create", "-q"}, args[:len(args)-1]...), p, args[len(args)-1])
	if out, err := exec.Command("qemu-img", a...).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img %v: %v %s", a, err, out)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const volAPI = "/api/v1/storage/pools/default/volumes"

func TestStorageAPI(t *testing.T) {
	ts := newTestServer(t)
	pool := withStorage(t, ts)
	expectOK := func(rec interface {
		Result() *http.Response
	}, code int) {
		t.Helper()
		if r := rec.Result(); r.StatusCode != code {
			b, _ := io.ReadAll(r.Body)
			t.Fatalf("status %d, want %d: %s", r.StatusCode, code, b)
		}
	}
	expectOK(ts.do("POST", volAPI, body(`{"name":"base","size":67108864}`)), 201)
	expectOK(ts.do("POST", volAPI, body(`{"name":"data","format":"raw","size":2097152}`)), 201)

	// Bad input: each refused with a message naming what and why.
	for _, tc := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"POST", volAPI, `{"name":"../etc","size":1048576}`, 400, "lower-case"},
		{"POST", volAPI, `{"name":"x","size":1000}`, 400, "below the minimum"},
		{"POST", volAPI, `{"name":"x","size":1048576,"format":"vmdk"}`, 400, "not raw or qcow2"},
		{"POST", volAPI, `{"name":"x","size":1048576,"extra":1}`, 400, "unknown field"},
		{"POST", volAPI, `{"name":"base","size":1048576}`, 409, "already exists"},
		{"POST", "/api/v1/storage/pools/nope/volumes", `{"name":"x","size":1048576}`, 404, "pool nope"},
		{"POST", volAPI + "/base/resize", `{"size":1048576}`, 400, "below its current size"},
		{"GET", volAPI + "/missing", "", 404, "default/missing"},
		{"GET", volAPI + "/Bad", "", 400, ""},
	} {
		var rd io.Reader
		if tc.body != "" {
			rd = body(tc.body)
		}
		rec := ts.do(tc.method, tc.path, rd)
		var e APIError
		json.Unmarshal(rec.Body.Bytes(), &e)
		if rec.Code != tc.code || !strings.Contains(e.Error, tc.want) {
			t.Errorf("%s %s %s: %d %q, want %d with %q", tc.method, tc.path, tc.body, rec.Code, e.Error, tc.code, tc.want)
		}
	}

	// Clone, then the base is protected.
	expectOK(ts.do("POST", volAPI+"/base/clone", body(`{"name":"web"}`)), 201)
	if rec := ts.do("DELETE", volAPI+"/base", nil); rec.Code != 409 || !strings.Contains(rec.Body.String(), "web") {
		t.Errorf("delete base with clones: %d %s", rec.Code, rec.Body)
	}
	if rec := ts.do("POST", volAPI+"/base/resize", body(`{"size":134217728}`)); rec.Code != 409 {
		t.Errorf("resize base with clones: %d %s", rec.Code, rec.Body)
	}

	// A VM on the clone: the volume is in use; a VM may not take the
	// base read-write; a missing volume is refused with its field.
	withDisk := func(d map[string]any) func(m map[string]any) {
		return func(m map[string]any) { m["disks"] = []map[string]any{d} }
	}
	expectOK(ts.do("POST", "/api/v1/vms", ts.spec("vm1", withDisk(map[string]any{"volume": "default/web"}))), 201)
	expectError(t, ts.do("POST", "/api/v1/vms", ts.spec("vm2", withDisk(map[string]any{"volume": "default/base"}))), 400, "disks[0].volume")
	expectOK(ts.do("POST", "/api/v1/vms", ts.spec("vm3", withDisk(map[string]any{"volume": "default/base", "read_only": true}))), 201)
	expectError(t, ts.do("POST", "/api/v1/vms", ts.spec("vm4", withDisk(map[string]any{"volume": "default/nope"}))), 400, "disks[0].volume")
	expectError(t, ts.do("POST", "/api/v1/vms", ts.spec("vm5", withDisk(map[string]any{"volume": "default/../../etc"}))), 400, "disks[0].volume")
	expectError(t, ts.do("POST", "/api/v1/vms", ts.spec("vm6", withDisk(map[string]any{"volume": "default/web", "path": "/etc/shadow"}))), 400, "disks[0]")
	rec := ts.do("DELETE", volAPI+"/web", nil)
	if rec.Code != 409 || !strings.Contains(rec.Body.String(), "vm1") {
		t.Errorf("delete in use: %d %s", rec.Code, rec.Body)
	}
	var info storage.VolumeInfo
	rec = ts.do("GET", volAPI+"/web", nil)
	json.Unmarshal(rec.Body.Bytes(), &info)
	if rec.Code != 200 || info.Base != "base" || len(info.UsedBy) != 1 || info.UsedBy[0].VM != "vm1" {
		t.Errorf("show: %d %s", rec.Code, rec.Body)
	}
	expectOK(ts.do("DELETE", "/api/v1/vms/vm1", nil), 204)
	expectOK(ts.do("DELETE", volAPI+"/web", nil), 204)

	// Imports.
	good := imgBytes(t, "-f", "qcow2", "4M")
	evil := imgBytes(t, "-f", "qcow2", "-u", "-b", "/etc/shadow", "-F", "raw", "1M")
	for _, tc := range []struct {
		name, query string
		data        []byte
		code        int
		want        string
	}{
		{"img", "", good, 201, ""},
		{"img2", "sha256=" + sha([]byte("x")), good, 400, "SHA-256 of the"},
		{"img3", "sha256=", good, 400, "sha256 is required"},
		{"img4", "", evil, 400, "/etc/shadow"},
		{"img5", "", good[:512], 400, "import refused"},
		{"img6", "format=raw", good, 400, "is a qcow2 image"},
	} {
		q := tc.query
		if q == "" || strings.HasPrefix(q, "format=") {
			q = strings.TrimPrefix(q+"&sha256="+sha(tc.data), "&")
		}
		rec := ts.do("PUT", volAPI+"/"+tc.name+"/content?"+q, bytes.NewReader(tc.data))
		if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.want) {
			t.Errorf("import %s: %d %s, want %d with %q", tc.name, rec.Code, rec.Body, tc.code, tc.want)
		}
	}
	ents, _ := os.ReadDir(pool)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if got := strings.Join(names, " "); got != "base.qcow2 data.raw img.qcow2" {
		t.Errorf("pool holds %q", got)
	}
	rec = ts.do("GET", volAPI+"/img/content", nil)
	if rec.Code != 200 || sha(rec.Body.Bytes()) != sha(good) || rec.Header().Get("X-Bulwark-Volume-Format") != "qcow2" {
		t.Errorf("export: %d, %d bytes", rec.Code, rec.Body.Len())
	}
	var vols []storage.Volume
	json.Unmarshal(ts.do("GET", "/api/v1/storage/volumes", nil).Body.Bytes(), &vols)
	if len(vols) != 3 {
		t.Errorf("list: %+v", vols)
	}

	// The pool's directory disappears: clear 503s, records kept.
	os.RemoveAll(pool)
	rec = ts.do("POST", volAPI, body(`{"name":"late","size":1048576}`))
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), "was removed") {
		t.Errorf("pool gone: %d %s", rec.Code, rec.Body)
	}
	var pools []storage.PoolInfo
	json.Unmarshal(ts.do("GET", "/api/v1/storage/pools", nil).Body.Bytes(), &pools)
	if len(pools) != 1 || pools[0].Available {
		t.Errorf("pools: %+v", pools)
	}
}

// TestStoragePrivileges: volumes are filtered per object; a disk on a
// volume needs VM.Config.Disk on the VM and Datastore.Allocate on the
// volume; Datastore.Audit alone cannot create or export.
func TestStoragePrivileges(t *testing.T) {
	ts, _ := newAccessTestServer(t)
	withStorage(t, ts)
	for _, n := range []string{"a", "b"} {
		if rec := ts.do("POST", volAPI, body(fmt.Sprintf(`{"name":%q,"size":1048576}`, n))); rec.Code != 201 {
			t.Fatal(rec.Body)
		}
	}
	must := func(method, path, b string) {
		t.Helper()
		if rec := ts.do(method, path, body(b)); rec.Code >= 300 {
			t.Fatalf("%s %s: %d %s", method, path, rec.Code, rec.Body)
		}
	}
	must("POST", "/api/v1/users", `{"name":"alice"}`)
	must("POST", "/api/v1/roles", `{"name":"maker"}`)
	must("POST", "/api/v1/roles/maker/privileges", `{"privilege":"VM.Create"}`)
	must("POST", "/api/v1/permissions", `{"user":"alice","role":"maker","path":"/vms","propagate":true}`)
	must("POST", "/api/v1/permissions", `{"user":"alice","role":"ReadOnly","path":"/storage/default/volumes/a","propagate":true}`)
	tok := ts.token("alice")

	var vols []storage.Volume
	json.Unmarshal(ts.as(tok, "GET", "/api/v1/storage/volumes", nil).Body.Bytes(), &vols)
	if len(vols) != 1 || vols[0].Name != "a" {
		t.Errorf("alice sees %+v, want only a", vols)
	}
	if rec := ts.as(tok, "GET", volAPI+"/a/content", nil); rec.Code != 403 {
		t.Errorf("export with Datastore.Audit only: %d", rec.Code)
	}
	if rec := ts.as(tok, "POST", volAPI, body(`{"name":"c","size":1048576}`)); rec.Code != 403 {
		t.Errorf("create without Datastore.Allocate: %d", rec.Code)
	}
	spec := func(name string) io.Reader {
		return ts.spec(name, func(m map[string]any) { m["disks"] = []map[string]any{{"volume": "default/a"}} })
	}
	rec := ts.as(tok, "POST", "/api/v1/vms", spec("v1"))
	if rec.Code != 403 || !strings.Contains(rec.Body.String(), "VM.Config.Disk") {
		t.Errorf("disk on a volume without VM.Config.Disk: %d %s", rec.Code, rec.Body)
	}
	must("POST", "/api/v1/roles/maker/privileges", `{"privilege":"VM.Config.Disk"}`)
	rec = ts.as(tok, "POST", "/api/v1/vms", spec("v2"))
	if rec.Code != 403 || !strings.Contains(rec.Body.String(), "Datastore.Allocate on /storage/default/volumes/a") {
		t.Errorf("disk on a volume without Datastore.Allocate: %d %s", rec.Code, rec.Body)
	}
}
