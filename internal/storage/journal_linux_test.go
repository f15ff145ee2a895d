package storage

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/store"
)

// crashHost is a store and a pool that outlive a Service, as the state
// directory outlives a daemon.
type crashHost struct {
	t    *testing.T
	st   *store.Store
	pool string
	s    *Service
}

func newCrashHost(t *testing.T) *crashHost {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed (Debian package qemu-utils)")
	}
	dir := t.TempDir()
	st, err := store.Open(context.Background(), filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := &crashHost{t: t, st: st, pool: filepath.Join(dir, "pool")}
	h.restart()
	t.Cleanup(func() { h.s.Close() })
	return h
}

// restart drops the Service (as a killed daemon would: nothing is
// undone) and starts a new one on the same store and pool.
func (h *crashHost) restart() {
	h.t.Helper()
	if h.s != nil {
		h.s.Close()
	}
	s, err := New(context.Background(), h.st, Config{Pools: map[string]string{DefaultPool: h.pool}})
	if err != nil {
		h.t.Fatalf("start after the crash: %v", err)
	}
	h.s = s
}

// consistent checks what a start needs: the pool holds exactly the
// recorded volumes' files, every volume's chain opens (headers agree with
// records), and no journal entry is left.
func (h *crashHost) consistent(want string) {
	h.t.Helper()
	var names []string
	for _, v := range h.s.Volumes() {
		names = append(names, v.FileName())
		layers, err := h.s.OpenChain(context.Background(), v.Ref(), true)
		if err != nil {
			h.t.Fatalf("volume %s does not open after the restart: %v", v.Ref(), err)
		}
		CloseLayers(layers)
	}
	sort.Strings(names)
	if files := poolFiles(h.t, h.pool); strings.Join(files, " ") != strings.Join(names, " ") || strings.Join(names, " ") != want {
		h.t.Fatalf("pool files %v, records %v, want %s", files, names, want)
	}
	if js, err := h.st.ListObjects(context.Background(), kindJournal); err != nil || len(js) != 0 {
		h.t.Fatalf("journal entries left: %d %v", len(js), err)
	}
}

// crashAt makes the next journalled op stop after step n.
func crashAt(t *testing.T, op string, n int) {
	crashAfter = func(o string, step int) bool { return o == op && step == n }
	t.Cleanup(func() { crashAfter = nil })
}

// TestJournalCrash: a daemon killed after each step of a freeze, revert
// or merge starts again with records that match the files: a freeze is
// undone, a revert or merge is undone before the old top was moved aside
// and finished after; the disk then reads what it read before (undone)
// or what the operation promised (finished).
func TestJournalCrash(t *testing.T) {
	ctx := context.Background()
	setup := func(t *testing.T, format string) *crashHost {
		h := newCrashHost(t)
		if format == FormatRaw {
			data := make([]byte, 1<<20)
			copy(data, "ORIGINAL")
			if _, err := h.s.Import(ctx, ImportRequest{Name: "web", Format: FormatRaw, SHA256: digest(data)}, bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
		} else {
			if _, err := h.s.Create(ctx, CreateRequest{Name: "web", Size: 1 << 20}); err != nil {
				t.Fatal(err)
			}
			guestWrite(t, h.pool, "web.qcow2", 'O')
		}
		return h
	}
	orig := map[string]string{FormatRaw: "ORIGINAL", FormatQcow2: "OOOOOOOO"}

	for _, format := range []string{FormatRaw, FormatQcow2} {
		for step := 1; step <= 4; step++ {
			t.Run("freeze-"+format+"-"+string(rune('0'+step)), func(t *testing.T) {
				h := setup(t, format)
				crashAt(t, opFreeze, step)
				if _, err := h.s.FreezeDisk(ctx, "default/web", "s1"); err != errCrashed {
					t.Fatalf("freeze: %v", err)
				}
				crashAfter = nil
				h.restart()
				h.consistent("web." + format)
				if got := readChain(t, h.pool, "web."+format, 8); string(got) != orig[format] {
					t.Fatalf("after the undone freeze: %q", got)
				}
				if _, err := h.s.FreezeDisk(ctx, "default/web", "s1"); err != nil {
					t.Fatalf("freeze after the restart: %v", err)
				}
			})
		}
	}

	for step := 1; step <= 4; step++ {
		t.Run("revert-"+string(rune('0'+step)), func(t *testing.T) {
			h := setup(t, FormatRaw)
			fz, err := h.s.FreezeDisk(ctx, "default/web", "s1")
			if err != nil {
				t.Fatal(err)
			}
			guestWrite(t, h.pool, "web.qcow2", 'C')
			crashAt(t, opRevert, step)
			if err := h.s.RevertDisk(ctx, "default/web", fz.Layer.Ref()); err != errCrashed {
				t.Fatalf("revert: %v", err)
			}
			crashAfter = nil
			h.restart()
			h.consistent("web-snap-s1.raw web.qcow2")
			want := "ORIGINAL" // finished: the old top was moved aside
			if step == 1 {
				want = "CCCCCCCC" // undone: the changes are kept
			}
			if got := readChain(t, h.pool, "web.qcow2", 8); string(got) != want {
				t.Fatalf("after the interrupted revert: %q, want %q", got, want)
			}
		})
	}

	for step := 1; step <= 4; step++ {
		t.Run("merge-"+string(rune('0'+step)), func(t *testing.T) {
			h := setup(t, FormatRaw)
			fz, err := h.s.FreezeDisk(ctx, "default/web", "s1")
			if err != nil {
				t.Fatal(err)
			}
			guestWrite(t, h.pool, "web.qcow2", 'M')
			crashAt(t, opMerge, step)
			plan := []DeleteAction{{Layer: fz.Layer.Ref(), Merge: "default/web"}}
			if err := h.s.DeleteSnapshotLayers(ctx, plan); err != errCrashed {
				t.Fatalf("merge: %v", err)
			}
			crashAfter = nil
			h.restart()
			file := "web.raw" // finished: the layer took the top's name
			if step == 1 {
				// Undone: the top is still on the layer; the delete is
				// retried and finishes.
				file = "web-snap-s1.raw web.qcow2"
			}
			h.consistent(file)
			if got := readChain(t, h.pool, strings.Fields(file)[len(strings.Fields(file))-1], 8); string(got) != "MMMMMMMM" {
				t.Fatalf("after the interrupted merge: %q", got)
			}
			// The retried snapshot delete, planned from the records as the
			// manager plans it: a merge again, or a layer already gone.
			snap := Snapshot{VM: "vm1", Name: "s1", Disks: []SnapshotDisk{{Disk: 0, Volume: "default/web", Layers: []LayerDigest{{Volume: fz.Layer.Ref()}}}}}
			plan, err = PlanSnapshotDelete(snap, map[int]string{0: "default/web"}, h.s.Volumes(), false)
			if err == nil {
				err = h.s.DeleteSnapshotLayers(ctx, plan)
			}
			if err != nil {
				t.Fatalf("retried delete (%+v): %v", plan, err)
			}
			h.consistent("web.raw")
			if got := readChain(t, h.pool, "web.raw", 8); string(got) != "MMMMMMMM" {
				t.Fatalf("after the retried merge: %q", got)
			}
		})
	}
}
