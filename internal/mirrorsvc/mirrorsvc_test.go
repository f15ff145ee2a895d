package mirrorsvc

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bulwark-project/bulwark/internal/mirror"
	"github.com/bulwark-project/bulwark/internal/netsw"
	"github.com/bulwark-project/bulwark/internal/store"
)

// Sessions are validated, installed, stored, installed again after a
// restart, and deleted; refusals change nothing.
func TestSessions(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(ctx, filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sw := netsw.New(log, nil)
	defer sw.Close()
	open := func() (*Service, *mirror.Manager) {
		m, err := mirror.NewManager(sw, filepath.Join(dir, "mirror"), log)
		if err != nil {
			t.Fatal(err)
		}
		svc, err := New(ctx, m, st, log)
		if err != nil {
			t.Fatal(err)
		}
		return svc, m
	}
	svc, m := open()
	x := mirror.Session{Name: "tap1", Network: "n1", Sources: []string{"web1"}, Target: mirror.Target{Kind: "pcap"}}
	if _, err := svc.Create(ctx, x); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Create(ctx, x); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate: %v", err)
	}
	var ie *InputError
	for _, bad := range []mirror.Session{
		{Name: "Bad Name", Network: "n1", Sources: []string{"a"}, Target: mirror.Target{Kind: "pcap"}},
		{Name: "b", Network: "n1", Target: mirror.Target{Kind: "pcap"}},
		{Name: "c", Network: "n1", Sources: []string{"a"}, Target: mirror.Target{Kind: "tape"}},
		{Name: "d", Network: "n1", Sources: []string{"a"}, Target: mirror.Target{Kind: "erspan", Remote: "not-an-ip"}},
	} {
		if _, err := svc.Create(ctx, bad); !errors.As(err, &ie) {
			t.Errorf("Create(%+v) = %v, want an input error", bad, err)
		}
	}
	if st := svc.Status(); len(st) != 1 || st[0].Name != "tap1" {
		t.Fatalf("status %+v", st)
	}
	// Each session is in the metrics, labelled; its source has no port.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewMetrics(svc))
	want := `
# HELP bulwark_mirror_missing_ports Sources and monitor ports of a mirror session with no switch port now.
# TYPE bulwark_mirror_missing_ports gauge
bulwark_mirror_missing_ports{network="n1",session="tap1",target="pcap"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "bulwark_mirror_missing_ports"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(reg, "bulwark_mirror_frames_total", "bulwark_mirror_bytes_total"); err != nil || n != 2 {
		t.Errorf("frame and byte counters: %d %v", n, err)
	}
	m.Close()

	svc2, m2 := open()
	defer m2.Close()
	if st := svc2.Status(); len(st) != 1 || st[0].Name != "tap1" {
		t.Fatalf("after restart: %+v", st)
	}
	if err := svc2.Delete(ctx, "tap1"); err != nil {
		t.Fatal(err)
	}
	if err := svc2.Delete(ctx, "tap1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
	if st := svc2.Status(); len(st) != 0 {
		t.Errorf("after delete: %+v", st)
	}
}
