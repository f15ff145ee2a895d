package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/vm"
)

func openTest(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func testSpec(name string) vm.Spec {
	return vm.Spec{
		Name: name, VCPUs: 2, MemoryMiB: 256, Kernel: "/boot/vmlinuz", Initrd: "/boot/initrd",
		Cmdline: "quiet", Accel: "auto",
		Disks: []vm.Disk{{Path: "/img/a.raw", ReadOnly: true}},
		NICs:  []vm.NIC{{MAC: "52:54:00:00:00:01", Network: "lan", Socket: "/run/sw.sock"}},
	}
}

// rawDB opens a second connection to the store's file, as an attacker with
// write access or a bug elsewhere might modify it.
func rawDB(t *testing.T, dir string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "bulwark.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestOpenSchemaAndMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state") // Open creates it
	s := openTest(t, dir)
	v, err := s.SchemaVersion(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if v != len(migrations) {
		t.Errorf("SchemaVersion = %d, want %d", v, len(migrations))
	}
	fi, err := os.Stat(filepath.Join(dir, "bulwark.db"))
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Errorf("database mode %v, want 0600", m)
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m := di.Mode().Perm(); m != 0o700 {
		t.Errorf("state dir mode %v, want 0700", m)
	}
	// SQLite's side files hold the same data as the database.
	for _, side := range []string{"bulwark.db-wal", "bulwark.db-shm"} {
		fi, err := os.Stat(filepath.Join(dir, side))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m&0o077 != 0 {
			t.Errorf("%s mode %v, want no group/other access", side, m)
		}
	}
}

// Opening again applies nothing and keeps the version.
func TestOpenTwiceIdempotent(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	s.Close()
	s2 := openTest(t, dir)
	var n int
	if err := s2.db.QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(migrations) {
		t.Errorf("%d migration rows after two opens, want %d", n, len(migrations))
	}
}

func TestCRUD(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())

	before := time.Now().UTC().Add(-time.Second)
	created, err := s.CreateVM(ctx, testSpec("web"))
	if err != nil {
		t.Fatal(err)
	}
	if created.State != vm.Defined || created.Reason != "" {
		t.Errorf("new VM state %q reason %q, want defined and no reason", created.State, created.Reason)
	}
	if created.Runtime.ID <= 0 {
		t.Errorf("new VM id %d, want > 0", created.Runtime.ID)
	}
	if !reflect.DeepEqual(created.Spec, testSpec("web")) {
		t.Errorf("spec round trip:\n got %+v\nwant %+v", created.Spec, testSpec("web"))
	}
	if created.Created.Before(before) || created.Created.Location() != time.UTC || !created.Updated.Equal(created.Created) {
		t.Errorf("timestamps created=%v updated=%v", created.Created, created.Updated)
	}

	if _, err := s.CreateVM(ctx, testSpec("web")); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate CreateVM = %v, want ErrExists", err)
	}
	if _, err := s.CreateVM(ctx, testSpec("db")); err != nil {
		t.Fatal(err)
	}

	got, err := s.GetVM(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, created) {
		t.Errorf("GetVM = %+v, want %+v", got, created)
	}
	if _, err := s.GetVM(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetVM(nope) = %v, want ErrNotFound", err)
	}

	list, err := s.ListVMs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Spec.Name != "db" || list[1].Spec.Name != "web" {
		t.Errorf("ListVMs = %v, want [db web]", names(list))
	}
	if list[0].Runtime.ID == list[1].Runtime.ID {
		t.Errorf("two VMs share id %d", list[0].Runtime.ID)
	}

	rt := vm.Runtime{ID: created.Runtime.ID, PID: 4242, StartTime: 1<<63 + 5, Accel: "tcg",
		AccelWhy: "no hardware KVM", RunDir: "/run/bulwark/web", UID: 100042}
	if err := s.SetState(ctx, "web", vm.Crashed, "exit status 1", rt); err != nil {
		t.Fatal(err)
	}
	got, err = s.GetVM(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != vm.Crashed || got.Reason != "exit status 1" || got.Runtime != rt {
		t.Errorf("after SetState: state %q reason %q runtime %+v, want crashed, exit status 1, %+v",
			got.State, got.Reason, got.Runtime, rt)
	}
	if got.Updated.Before(got.Created) || !got.Created.Equal(created.Created) {
		t.Errorf("after SetState: created %v updated %v", got.Created, got.Updated)
	}
	if err := s.SetState(ctx, "nope", vm.Running, "", vm.Runtime{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetState(nope) = %v, want ErrNotFound", err)
	}

	if err := s.DeleteVM(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetVM(ctx, "web"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetVM after delete = %v, want ErrNotFound", err)
	}
	if err := s.DeleteVM(ctx, "web"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second DeleteVM = %v, want ErrNotFound", err)
	}
	// The name is free again and gets a new id (AUTOINCREMENT never reuses).
	again, err := s.CreateVM(ctx, testSpec("web"))
	if err != nil {
		t.Fatal(err)
	}
	if again.Runtime.ID <= list[1].Runtime.ID && again.Runtime.ID <= list[0].Runtime.ID {
		t.Errorf("re-created VM id %d reuses an old id", again.Runtime.ID)
	}
}

func names(vms []*vm.VM) []string {
	var out []string
	for _, v := range vms {
		out = append(out, v.Spec.Name)
	}
	return out
}

func TestListEmpty(t *testing.T) {
	s := openTest(t, t.TempDir())
	list, err := s.ListVMs(context.Background())
	if err != nil || len(list) != 0 {
		t.Errorf("ListVMs on empty store = %v, %v", list, err)
	}
}

// Names are data, never SQL.
func TestHostileNames(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	for _, n := range []string{`x'; DROP TABLE vms; --`, `"`, "%", "_"} {
		if _, err := s.CreateVM(ctx, testSpec(n)); err != nil {
			t.Fatalf("CreateVM(%q): %v", n, err)
		}
		v, err := s.GetVM(ctx, n)
		if err != nil || v.Spec.Name != n {
			t.Fatalf("GetVM(%q) = %v, %v", n, v, err)
		}
	}
	if _, err := s.GetVM(ctx, "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetVM(x) = %v: LIKE-style matching?", err)
	}
	list, err := s.ListVMs(ctx)
	if err != nil || len(list) != 4 {
		t.Errorf("ListVMs = %v, %v", names(list), err)
	}
}

func TestReopenPersists(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir)
	if _, err := s.CreateVM(ctx, testSpec("a")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateVM(ctx, testSpec("b")); err != nil {
		t.Fatal(err)
	}
	rt := vm.Runtime{PID: 77, StartTime: 123456789, Accel: "kvm", AccelWhy: "hardware KVM", RunDir: "/run/b", UID: -1}
	if err := s.SetState(ctx, "b", vm.Running, "", rt); err != nil {
		t.Fatal(err)
	}
	want, err := s.ListVMs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := openTest(t, dir)
	got, err := s2.ListVMs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after reopen:\n got %+v\nwant %+v", got, want)
	}
	if v, _ := s2.SchemaVersion(ctx); v != len(migrations) {
		t.Errorf("schema version after reopen %d", v)
	}
}

func TestCorruptRows(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		desc, spec, state string
		wantErr           string
	}{
		{"spec not JSON", `{not json`, "defined", `vm "bad": corrupt spec`},
		{"spec wrong type", `{"vcpus":"two"}`, "defined", `vm "bad": corrupt spec`},
		{"spec empty", ``, "defined", `vm "bad": corrupt spec`},
		{"unknown state", `{"name":"bad"}`, "exploded", `vm "bad": unknown state "exploded"`},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			dir := t.TempDir()
			s := openTest(t, dir)
			if _, err := s.CreateVM(ctx, testSpec("good")); err != nil {
				t.Fatal(err)
			}
			db := rawDB(t, dir)
			if _, err := db.Exec(`INSERT INTO vms (name, spec, state, created_at, updated_at) VALUES ('bad', ?, ?, 0, 0)`,
				tc.spec, tc.state); err != nil {
				t.Fatal(err)
			}
			_, err := s.GetVM(ctx, "bad")
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("GetVM = %v, want error containing %q", err, tc.wantErr)
			}
			if errors.Is(err, ErrNotFound) {
				t.Errorf("corrupt row reported as not found: %v", err)
			}
			if _, err := s.ListVMs(ctx); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ListVMs = %v, want error containing %q", err, tc.wantErr)
			}
			// Other rows stay readable.
			if _, err := s.GetVM(ctx, "good"); err != nil {
				t.Errorf("GetVM(good) = %v", err)
			}
		})
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	s.Close()
	db := rawDB(t, dir)
	future := len(migrations) + 1
	if _, err := db.Exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, 0)`, future); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s2, err := Open(context.Background(), dir)
	if err == nil {
		s2.Close()
		t.Fatal("Open accepted a database from a newer binary")
	}
	if !strings.Contains(err.Error(), "newer than this binary") {
		t.Errorf("Open = %v, want a newer-schema error", err)
	}
}

func TestOpenFailures(t *testing.T) {
	dir := t.TempDir()
	// The state directory path is a regular file.
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(context.Background(), file); err == nil {
		s.Close()
		t.Error("Open on a regular file as state dir succeeded")
	}
	// The database file is not SQLite.
	bad := filepath.Join(dir, "bad")
	if err := os.MkdirAll(bad, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bad, "bulwark.db"), []byte(strings.Repeat("garbage!", 1024)), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(context.Background(), bad); err == nil {
		s.Close()
		t.Error("Open on a garbage database file succeeded")
	}
}

func TestCanceledContext(t *testing.T) {
	s := openTest(t, t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.CreateVM(ctx, testSpec("x")); err == nil {
		t.Error("CreateVM with a canceled context succeeded")
	}
	if _, err := s.GetVM(context.Background(), "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetVM after canceled create = %v, want ErrNotFound", err)
	}
}

// The decoded VM list is cached between changes: every write shows in the
// next listing, and changing a listed VM does not change the cache.
func TestListCacheFollowsWrites(t *testing.T) {
	s := openTest(t, t.TempDir())
	ctx := context.Background()
	names := func() string {
		vms, err := s.ListVMs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, v := range vms {
			out = append(out, v.Spec.Name+":"+string(v.State)+":"+fmt.Sprint(v.Spec.MemoryMiB))
		}
		return strings.Join(out, ",")
	}
	spec := vm.Spec{Name: "a", VCPUs: 1, MemoryMiB: 64, Kernel: "/k", Accel: "auto", NICs: []vm.NIC{{Groups: []string{"g"}}}}
	if _, err := s.CreateVM(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if got := names(); got != "a:defined:64" {
		t.Fatalf("after create: %s", got)
	}
	vms, _ := s.ListVMs(ctx)
	vms[0].State, vms[0].Spec.NICs[0].Groups[0] = "running", "evil"
	if v, _ := s.ListVMs(ctx); v[0].State != vm.Defined || v[0].Spec.NICs[0].Groups[0] != "g" {
		t.Fatalf("a caller's change reached the cache: %+v", v[0])
	}
	if err := s.SetState(ctx, "a", vm.Running, "", vm.Runtime{}); err != nil {
		t.Fatal(err)
	}
	spec.MemoryMiB = 128
	if err := s.SetSpec(ctx, "a", spec); err != nil {
		t.Fatal(err)
	}
	if got := names(); got != "a:running:128" {
		t.Fatalf("after set state and spec: %s", got)
	}
	spec.Name = "b"
	s.CreateVM(ctx, spec)
	if err := s.DeleteVM(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if got := names(); got != "b:defined:128" {
		t.Fatalf("after create b, delete a: %s", got)
	}
}
