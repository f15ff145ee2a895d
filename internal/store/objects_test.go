package store

import (
	"context"
	"errors"
	"testing"
)

func TestObjects(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateObject(ctx, "network", "lan", []byte(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateObject(ctx, "network", "lan", []byte(`{}`)); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate: %v", err)
	}
	// Same name, other kind: independent.
	if err := s.CreateObject(ctx, "group", "lan", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateObject(ctx, "network", "lan", []byte(`{"a":2}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateObject(ctx, "network", "nope", nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update missing: %v", err)
	}
	s.Close()
	s, err = Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	o, err := s.GetObject(ctx, "network", "lan")
	if err != nil || string(o.Spec) != `{"a":2}` {
		t.Fatalf("after reopen: %v %v", o, err)
	}
	list, _ := s.ListObjects(ctx, "network")
	if len(list) != 1 {
		t.Fatalf("list: %d", len(list))
	}
	if err := s.DeleteObject(ctx, "network", "lan"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetObject(ctx, "network", "lan"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
}
