package api

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/bulwark-project/bulwark/internal/audit"
)

func openTestAudit(t *testing.T, dir string) *audit.Log {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	l, err := audit.Open(context.Background(), dir, key, 100)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// A change whose intent cannot be recorded is not made: the caller gets 503
// and nothing changes.
func TestAuditFailsClosed(t *testing.T) {
	ts, acc := newAccessTestServer(t)
	l := openTestAudit(t, filepath.Join(ts.dir, "audit"))
	ts.srv.SetAudit(l)
	if rec := ts.do("POST", "/api/v1/users", body(`{"name":"before"}`)); rec.Code != 201 {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	l.Close() // from now on every append fails
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/api/v1/users", `{"name":"after"}`},
		{"POST", "/api/v1/vms", ""},
		{"DELETE", "/api/v1/users/before", ""},
		{"POST", "/api/v1/tokens", `{"user":"before"}`},
	} {
		b := body(c.body)
		if c.path == "/api/v1/vms" {
			b = ts.spec("v1", nil)
		}
		rec := ts.do(c.method, c.path, b)
		if rec.Code != 503 || !strings.Contains(rec.Body.String(), "audit log cannot record") {
			t.Errorf("%s %s with the audit log down: %d %s", c.method, c.path, rec.Code, rec.Body)
		}
	}
	users := acc.Users()
	if len(users) != 1 || users[0].Name != "before" || len(acc.Tokens()) != 0 {
		t.Errorf("a change was made without a record: users %v, tokens %v", users, acc.Tokens())
	}
	if rec := ts.do("GET", "/api/v1/vms/v1", nil); rec.Code != 404 {
		t.Errorf("VM created without a record: %d", rec.Code)
	}
	// Reads still work.
	if rec := ts.do("GET", "/api/v1/users", nil); rec.Code != 200 {
		t.Errorf("read with the audit log down: %d", rec.Code)
	}
}

// With the audit log's filesystem full, changes are refused; once space is
// back they are made and recorded. The log is on a real, tiny tmpfs.
func TestAuditDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs") // CI runs as root
	}
	ts, acc := newAccessTestServer(t)
	dir := filepath.Join(ts.dir, "small")
	os.MkdirAll(dir, 0o700)
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=2m,mode=0700"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	l := openTestAudit(t, filepath.Join(dir, "audit"))
	t.Cleanup(func() { l.Close() })
	ts.srv.SetAudit(l)
	if rec := ts.do("POST", "/api/v1/users", body(`{"name":"first"}`)); rec.Code != 201 {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill: %v", err)
			}
			break
		}
	}
	f.Close()
	for i, name := range []string{"u1", "u2", "u3"} {
		rec := ts.do("POST", "/api/v1/users", body(`{"name":"`+name+`"}`))
		if rec.Code != 503 {
			t.Errorf("user create %d with the disk full: %d %s", i, rec.Code, rec.Body)
		}
	}
	if n := len(acc.Users()); n != 1 {
		t.Errorf("%d users exist; changes were made without a record", n)
	}
	os.Remove(filler)
	if rec := ts.do("POST", "/api/v1/users", body(`{"name":"u4"}`)); rec.Code != 201 {
		t.Fatalf("create after freeing space: %d %s", rec.Code, rec.Body)
	}
	recs, err := l.List(context.Background(), audit.Filter{User: "root"})
	if err != nil {
		t.Fatal(err)
	}
	var objs []string
	for _, r := range recs {
		objs = append(objs, r.Object+":"+r.Result)
	}
	got := strings.Join(objs, " ")
	for _, want := range []string{"/users:intent", "/users/first:ok", "/users/u4:ok"} {
		if !strings.Contains(got, want) {
			t.Errorf("audit records %q lack %q", got, want)
		}
	}
	if strings.Contains(got, "/users/u1") {
		t.Errorf("a refused change has an outcome record: %s", got)
	}
}

// Outcome records name what was acted on: the created object, the token's
// owner, the grant's role, path and subject.
func TestAuditRecordsNameTheTarget(t *testing.T) {
	ts, _ := newAccessTestServer(t)
	l := openTestAudit(t, filepath.Join(ts.dir, "audit"))
	t.Cleanup(func() { l.Close() })
	ts.srv.SetAudit(l)
	ts.do("POST", "/api/v1/users", body(`{"name":"alice"}`))
	ts.do("POST", "/api/v1/tokens", body(`{"user":"alice"}`))
	ts.do("POST", "/api/v1/permissions", body(`{"user":"alice","role":"VMOperator","path":"/vms","propagate":true}`))
	ts.do("POST", "/api/v1/vms", ts.spec("web1", nil))
	recs, err := l.List(context.Background(), audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, r := range recs {
		if r.Result == "ok" {
			lines = append(lines, r.Action+" "+r.Object+" "+r.Detail)
		}
	}
	all := strings.Join(lines, "\n")
	for _, want := range []string{
		"createUser /users/alice created user alice",
		"createToken /users/alice created API token",
		"grantPermission /vms granted entry",
		"role VMOperator on /vms to user alice (propagating)",
		"createVM /vms/web1 created VM web1",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no record with %q in:\n%s", want, all)
		}
	}
}
