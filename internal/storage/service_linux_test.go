package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/store"
)

// Tests in this file run the real qemu-img on real files and a real store.

func newService(t *testing.T) (*Service, string) {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed (Debian package qemu-utils)")
	}
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	pool := filepath.Join(dir, "pool")
	s, err := New(ctx, st, Config{Pools: map[string]string{DefaultPool: pool}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, pool
}

// poolFiles lists a pool directory's entries.
func poolFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

func digest(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// qemuImgFile makes an image with the real qemu-img outside any pool.
func qemuImgFile(t *testing.T, args ...string) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "img")
	out, err := exec.Command("qemu-img", append(append([]string{"create", "-q"}, args[:len(args)-1]...), p, args[len(args)-1])...).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img create %v: %v: %s", args, err, out)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCreateResizeCloneDelete(t *testing.T) {
	s, pool := newService(t)
	ctx := context.Background()
	v, err := s.Create(ctx, CreateRequest{Name: "base", Size: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if v.Format != FormatQcow2 || v.Size != 64<<20 {
		t.Fatalf("got %+v", v)
	}
	fi, err := os.Stat(filepath.Join(pool, "base.qcow2"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file: %v %v", fi, err)
	}
	if pi, err := os.Stat(pool); err != nil || pi.Mode().Perm() != 0o700 {
		t.Fatalf("pool dir: %v %v", pi, err)
	}
	if _, err := s.Create(ctx, CreateRequest{Name: "base", Size: 1 << 20}); !errors.Is(err, ErrConflict) {
		t.Errorf("duplicate: %v", err)
	}
	if _, err := s.Create(ctx, CreateRequest{Name: "r", Format: "raw", Size: 2 << 20}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, CreateRequest{Name: "../etc", Size: 2 << 20}); !errors.Is(err, ErrInvalid) {
		t.Errorf("path name: %v", err)
	}
	if _, err := s.Create(ctx, CreateRequest{Name: "x", Format: "vmdk", Size: 2 << 20}); !errors.Is(err, ErrInvalid) {
		t.Errorf("format: %v", err)
	}
	if _, err := s.Create(ctx, CreateRequest{Pool: "nope", Name: "x", Size: 2 << 20}); !errors.Is(err, ErrNotFound) {
		t.Errorf("pool: %v", err)
	}

	// Resize: grow works, shrink is refused with the sizes named.
	if v, err = s.Resize(ctx, DefaultPool, "base", 128<<20); err != nil || v.Size != 128<<20 {
		t.Fatalf("resize: %+v %v", v, err)
	}
	if _, err := s.Resize(ctx, DefaultPool, "base", 32<<20); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "below its current size") {
		t.Errorf("shrink: %v", err)
	}
	if _, err := s.Resize(ctx, DefaultPool, "r", 4<<20); err != nil {
		t.Errorf("raw resize: %v", err)
	}
	if fi, _ := os.Stat(filepath.Join(pool, "r.raw")); fi == nil || fi.Size() != 4<<20 {
		t.Errorf("raw file after resize: %v", fi)
	}

	// Clone: an overlay whose header names the base's file, which the
	// records agree with.
	c, err := s.Clone(ctx, DefaultPool, "base", "web")
	if err != nil {
		t.Fatal(err)
	}
	if c.Base != "base" || c.Size != 128<<20 {
		t.Fatalf("clone: %+v", c)
	}
	out, err := exec.Command("qemu-img", "info", "-U", "--output=json", "-f", "qcow2", filepath.Join(pool, "web.qcow2")).Output()
	if err != nil || !strings.Contains(string(out), `"backing-filename": "base.qcow2"`) {
		t.Errorf("overlay header: %v %s", err, out)
	}
	layers, err := s.OpenChain(ctx, "default/web", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 2 || layers[0].Volume != "default/base" || !layers[0].ReadOnly || layers[1].Volume != "default/web" || layers[1].ReadOnly {
		t.Errorf("chain: %+v", layers)
	}
	CloseLayers(layers)
	// The base is now read-only: no read-write open, no resize, no delete.
	if _, err := s.OpenChain(ctx, "default/base", false); !errors.Is(err, ErrConflict) {
		t.Errorf("rw open of a base: %v", err)
	}
	if err := s.CheckAttach("default/base", false); !errors.Is(err, ErrConflict) {
		t.Errorf("rw attach of a base: %v", err)
	}
	if _, err := s.Resize(ctx, DefaultPool, "base", 256<<20); !errors.Is(err, ErrConflict) {
		t.Errorf("resize of a base: %v", err)
	}
	if err := s.Delete(ctx, DefaultPool, "base"); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "web") {
		t.Errorf("delete of a base: %v", err)
	}
	if _, _, err := s.Export(ctx, DefaultPool, "web"); !errors.Is(err, ErrInvalid) {
		t.Errorf("export of a clone: %v", err)
	}
	// In use: the manager says a VM has it.
	s.SetUsers(func(_ context.Context, ref string) ([]Use, error) {
		if ref == "default/web" {
			return []Use{{VM: "vm1", Disk: 0}}, nil
		}
		return nil, nil
	})
	if err := s.Delete(ctx, DefaultPool, "web"); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "vm1") {
		t.Errorf("delete in use: %v", err)
	}
	s.SetUsers(nil)
	info, err := s.Inspect(ctx, DefaultPool, "base")
	if err != nil || len(info.Clones) != 1 || info.Problem != "" {
		t.Errorf("inspect: %+v %v", info, err)
	}
	for _, n := range []string{"web", "base", "r"} {
		if err := s.Delete(ctx, DefaultPool, n); err != nil {
			t.Fatal(err)
		}
	}
	if got := poolFiles(t, pool); len(got) != 0 {
		t.Errorf("pool left with %v", got)
	}
	if len(s.Volumes()) != 0 {
		t.Errorf("records left: %v", s.Volumes())
	}
}

func TestImport(t *testing.T) {
	s, pool := newService(t)
	ctx := context.Background()
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, bytes.Repeat([]byte("SECRET!\n"), 1<<17), 0o600)

	good := qemuImgFile(t, "-f", "qcow2", "4M")
	raw := bytes.Repeat([]byte{0xab}, 1<<20)
	evilBacking := qemuImgFile(t, "-f", "qcow2", "-u", "-b", secret, "-F", "raw", "1M")
	evilData := qemuImgFile(t, "-f", "qcow2", "-o", "data_file="+secret+",data_file_raw=on", "1M")
	corrupt := append([]byte(nil), good...)
	copy(corrupt[48:56], []byte{0x7f, 0, 0, 0, 0, 0, 0, 0}) // refcount table far past the end

	tests := []struct {
		name, format string
		data         []byte
		sha          string
		want         string // "" = accepted; else a substring of the error
		wantFormat   string
	}{
		{name: "q", data: good, wantFormat: FormatQcow2},
		{name: "r", data: raw, wantFormat: FormatRaw},
		{name: "r2", format: "raw", data: raw, wantFormat: FormatRaw},
		{name: "wrongsha", data: good, sha: digest([]byte("other")), want: "SHA-256"},
		{name: "badsha", data: good, sha: "abc", want: "64 hex digits"},
		{name: "evilbacking", data: evilBacking, want: "backing file \"" + secret},
		{name: "evildata", data: evilData, want: "external data file"},
		{name: "truncated", data: good[:300], want: "import refused"},
		{name: "headeronly", data: good[:60], want: "truncated"},
		{name: "corrupt", data: corrupt, want: "import refused"},
		{name: "mislabelled", format: "raw", data: good, want: "is a qcow2 image"},
		{name: "notqcow", format: "qcow2", data: raw, want: "not a qcow2"},
		{name: "empty", data: nil, sha: digest(nil), want: "empty"},
		{name: "odd", data: []byte("hello"), want: "512-byte sectors"},
		{name: "a/b", data: raw, want: "lower-case"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sha := tc.sha
			if sha == "" {
				sha = digest(tc.data)
			}
			v, err := s.Import(ctx, ImportRequest{Name: tc.name, Format: tc.format, SHA256: sha, Length: int64(len(tc.data))}, bytes.NewReader(tc.data))
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err = %v, want %q", err, tc.want)
				}
				for _, f := range poolFiles(t, pool) {
					if strings.Contains(f, tc.name) {
						t.Errorf("left behind: %s", f)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v.Format != tc.wantFormat || v.SHA256 != sha {
				t.Errorf("got %+v", v)
			}
			// Export gives back exactly what was imported.
			f, _, err := s.Export(ctx, DefaultPool, tc.name)
			if err != nil {
				t.Fatal(err)
			}
			back, _ := io.ReadAll(f)
			f.Close()
			if digest(back) != sha {
				t.Errorf("export differs from import")
			}
		})
	}
	if got := poolFiles(t, pool); strings.Join(got, " ") != "q.qcow2 r.raw r2.raw" {
		t.Errorf("pool holds %v", got)
	}
}

// TestPlantedHeader: a file replaced behind Bulwark's back by a qcow2
// whose header names a host file is refused at open, and so are a data
// file and a swapped backing name on a clone.
func TestPlantedHeader(t *testing.T) {
	s, pool := newService(t)
	ctx := context.Background()
	if _, err := s.Create(ctx, CreateRequest{Name: "disk", Size: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, CreateRequest{Name: "base", Size: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Clone(ctx, DefaultPool, "base", "clone"); err != nil {
		t.Fatal(err)
	}
	plant := func(name string, img []byte) {
		if err := os.WriteFile(filepath.Join(pool, name), img, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	plant("disk.qcow2", qemuImgFile(t, "-f", "qcow2", "-u", "-b", "/etc/shadow", "-F", "raw", "1M"))
	if _, err := s.OpenChain(ctx, "default/disk", false); err == nil || !strings.Contains(err.Error(), "/etc/shadow") || !strings.Contains(err.Error(), "none on record") {
		t.Errorf("planted backing: %v", err)
	}
	info, _ := s.Inspect(ctx, DefaultPool, "disk")
	if info == nil || !strings.Contains(info.Problem, "/etc/shadow") {
		t.Errorf("inspect does not name the problem: %+v", info)
	}
	if _, err := s.Resize(ctx, DefaultPool, "disk", 2<<20); err == nil {
		t.Error("resize of a planted file accepted")
	}
	plant("clone.qcow2", qemuImgFile(t, "-f", "qcow2", "-u", "-b", "/etc/shadow", "-F", "qcow2", "1M"))
	if _, err := s.OpenChain(ctx, "default/clone", false); err == nil || !strings.Contains(err.Error(), "record says \"base.qcow2\"") {
		t.Errorf("swapped backing: %v", err)
	}
	plant("clone.qcow2", qemuImgFile(t, "-f", "qcow2", "-o", "data_file=/etc/shadow", "1M"))
	if _, err := s.OpenChain(ctx, "default/clone", false); err == nil || !strings.Contains(err.Error(), "external data file") {
		t.Errorf("data file: %v", err)
	}
	// A symlink planted in place of a volume file is not followed.
	os.Remove(filepath.Join(pool, "disk.qcow2"))
	os.Symlink("/etc/shadow", filepath.Join(pool, "disk.qcow2"))
	if _, err := s.OpenChain(ctx, "default/disk", true); err == nil {
		t.Error("symlink followed")
	}
}

// TestPoolGone: a pool whose directory disappears refuses with a clear
// message and leaves nothing; the records stay.
func TestPoolGone(t *testing.T) {
	s, pool := newService(t)
	ctx := context.Background()
	if _, err := s.Create(ctx, CreateRequest{Name: "a", Size: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(pool); err != nil {
		t.Fatal(err)
	}
	_, err := s.Create(ctx, CreateRequest{Name: "b", Size: 1 << 20})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "was removed") {
		t.Errorf("create: %v", err)
	}
	data := bytes.Repeat([]byte{1}, 1<<20)
	if _, err := s.Import(ctx, ImportRequest{Name: "c", SHA256: digest(data)}, bytes.NewReader(data)); !errors.Is(err, ErrUnavailable) {
		t.Errorf("import: %v", err)
	}
	if _, err := s.OpenChain(ctx, "default/a", false); !errors.Is(err, ErrUnavailable) {
		t.Errorf("open: %v", err)
	}
	if ps := s.Pools(); len(ps) != 1 || ps[0].Available || ps[0].Problem == "" {
		t.Errorf("pools: %+v", ps)
	}
	if len(s.Volumes()) != 1 {
		t.Errorf("records: %v", s.Volumes())
	}
}

// TestPoolFull: an import into a pool without room is refused before a
// byte is written when the length is known, and mid-stream otherwise,
// leaving nothing.
func TestPoolFull(t *testing.T) {
	s, pool := newService(t)
	ctx := context.Background()
	_, free, err := s.pools[DefaultPool].space()
	if err != nil {
		t.Fatal(err)
	}
	sha := digest(nil)
	_, err = s.Import(ctx, ImportRequest{Name: "big", SHA256: sha, Length: int64(free)}, strings.NewReader(""))
	if !errors.Is(err, ErrNoSpace) {
		t.Errorf("import larger than free space: %v", err)
	}
	if got := poolFiles(t, pool); len(got) != 0 {
		t.Errorf("left: %v", got)
	}
	// A stream that fails midway (the client goes away) leaves nothing.
	r := io.MultiReader(bytes.NewReader(make([]byte, 1<<20)), errReader{})
	if _, err := s.Import(ctx, ImportRequest{Name: "cut", SHA256: sha}, r); err == nil {
		t.Error("cut stream accepted")
	}
	if got := poolFiles(t, pool); len(got) != 0 {
		t.Errorf("left: %v", got)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

// TestRestartRemovesTemps: files an interrupted operation left are removed
// when the pool opens; records survive a restart.
func TestRestartRemovesTemps(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("no qemu-img")
	}
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg := Config{Pools: map[string]string{DefaultPool: filepath.Join(dir, "pool")}}
	s, err := New(ctx, st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, CreateRequest{Name: "keep", Size: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	os.WriteFile(filepath.Join(dir, "pool", tempPrefix+"half-0123"), []byte("x"), 0o600)
	s, err = New(ctx, st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := poolFiles(t, filepath.Join(dir, "pool")); strings.Join(got, " ") != "keep.qcow2" {
		t.Errorf("pool holds %v", got)
	}
	if len(s.Volumes()) != 1 {
		t.Errorf("records: %v", s.Volumes())
	}
}
