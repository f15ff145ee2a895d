package storage

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/bulwark-project/bulwark/internal/store"
)

// chainDigests opens ref's chain and returns each layer's SHA256, base
// first.
func chainDigests(t *testing.T, s *Service, ref string, readOnly bool) []string {
	t.Helper()
	ls, err := s.OpenChain(context.Background(), ref, readOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer CloseLayers(ls)
	var out []string
	for _, l := range ls {
		if !l.ReadOnly && l.SHA256 != "" {
			t.Errorf("%s: writable layer %s carries a content digest", ref, l.Volume)
		}
		out = append(out, l.SHA256)
	}
	return out
}

// TestLayerContentDigest: a read-only layer carries its import digest
// while the volume was never opened for writing; a read-write open (or a
// resize) clears Pristine in the record first, and from then on, across a restart, no digest
// is claimed for that file.
func TestLayerContentDigest(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed (Debian package qemu-utils)")
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
	data := bytes.Repeat([]byte("base"), 1<<18) // 1 MiB raw
	for _, name := range []string{"base", "data", "grow"} {
		if _, err := s.Import(ctx, ImportRequest{Name: name, Format: FormatRaw, SHA256: digest(data)}, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Clone(ctx, DefaultPool, "base", "root"); err != nil {
		t.Fatal(err)
	}
	want := digest(data)
	if got := chainDigests(t, s, "default/base", true); len(got) != 1 || got[0] != want {
		t.Errorf("base read-only: %q, want [%s]", got, want)
	}
	// A clone's chain: the base (read-only, digest) under a writable top.
	if got := chainDigests(t, s, "default/root", false); len(got) != 2 || got[0] != want || got[1] != "" {
		t.Errorf("clone: %q, want [%s \"\"]", got, want)
	}
	if got := chainDigests(t, s, "default/data", true); len(got) != 1 || got[0] != want {
		t.Errorf("data read-only: %q", got)
	}
	chainDigests(t, s, "default/data", false) // a VM could write it now
	if got := chainDigests(t, s, "default/data", true); got[0] != "" {
		t.Errorf("data after a read-write open: %q, want no digest", got)
	}
	if _, err := s.Resize(ctx, DefaultPool, "grow", 2<<20); err != nil {
		t.Fatal(err)
	}
	if got := chainDigests(t, s, "default/grow", true); got[0] != "" {
		t.Errorf("grow after a resize: %q, want no digest", got)
	}
	s.Close()

	s2, err := New(ctx, st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	for ref, want := range map[string]string{"default/data": "", "default/grow": "", "default/base": want} {
		if got := chainDigests(t, s2, ref, true); got[0] != want {
			t.Errorf("%s after a restart: %q, want %q", ref, got[0], want)
		}
	}
	v, err := s2.Inspect(ctx, DefaultPool, "data")
	if err != nil {
		t.Fatal(err)
	}
	if v.SHA256 != digest(data) || v.Pristine {
		t.Errorf("data's record: %+v; the import digest stays, no longer pristine", v.Volume)
	}
	// A record from before Pristine existed claims no digest.
	old := v.Volume
	old.Name, old.Pristine = "old", false
	if old.ContentSHA256() != "" {
		t.Error("a record without pristine claims a content digest")
	}
}
