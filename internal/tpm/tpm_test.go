package tpm_test

import (
	"crypto/sha256"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/tpm"
	"github.com/bulwark-project/bulwark/internal/tpm/swtpmtest"
)

func openSwtpm(t *testing.T) (tpm.TPM, *swtpmtest.Instance) {
	t.Helper()
	sw := swtpmtest.Start(t)
	tp, err := tpm.Open(sw.Config())
	if err != nil {
		t.Fatalf("open %v: %v", sw, err)
	}
	t.Cleanup(func() { tp.Close() })
	return tp, sw
}

func readOne(t *testing.T, tp tpm.TPM, i int) [32]byte {
	t.Helper()
	vals, err := tp.ReadPCRs([]int{i})
	if err != nil {
		t.Fatalf("read PCR %d: %v", i, err)
	}
	v, ok := vals[i]
	if !ok {
		t.Fatalf("read PCR %d: no value in %v", i, vals)
	}
	return v
}

func TestExtendReadsBackAsHashChain(t *testing.T) {
	tp, _ := openSwtpm(t)
	if got := tp.Info(); got.Kind != tpm.KindSwtpm || got.HardwareRooted() {
		t.Errorf("Info() = %v, want a swtpm that is not hardware-rooted", got)
	}
	for _, index := range []int{0, 7, 10, 16, 23} {
		for round := range 3 {
			old := readOne(t, tp, index)
			digest := sha256.Sum256([]byte{byte(index), byte(round)})
			if err := tp.ExtendPCR(index, digest); err != nil {
				t.Fatalf("extend PCR %d: %v", index, err)
			}
			want := sha256.Sum256(append(old[:], digest[:]...))
			if got := readOne(t, tp, index); got != want {
				t.Errorf("PCR %d round %d = %x, want SHA256(old||digest) = %x", index, round, got, want)
			}
		}
	}
}

func TestReadSeveralPCRs(t *testing.T) {
	tp, _ := openSwtpm(t)
	extended := map[int]bool{1: true, 9: true, 14: true}
	for i := range extended {
		if err := tp.ExtendPCR(i, sha256.Sum256([]byte{byte(i)})); err != nil {
			t.Fatal(err)
		}
	}
	// All 24 take several TPM2_PCR_Read calls (8 digests per call at most);
	// the duplicate must not confuse the bookkeeping.
	all := []int{23, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 9}
	vals, err := tp.ReadPCRs(all)
	if err != nil {
		t.Fatal(err)
	}
	if len(vals) != tpm.NumPCRs {
		t.Fatalf("read %d PCRs, want %d: %v", len(vals), tpm.NumPCRs, vals)
	}
	var zero, ones [32]byte
	for i := range ones {
		ones[i] = 0xff
	}
	for i := range tpm.NumPCRs {
		want := zero
		switch {
		case extended[i]:
			d := sha256.Sum256([]byte{byte(i)})
			want = sha256.Sum256(append(zero[:], d[:]...))
		case i >= 17 && i <= 22:
			// PC Client: the locality-restricted PCRs start at all ones
			// when there was no dynamic launch.
			want = ones
		}
		if vals[i] != want {
			t.Errorf("PCR %d = %x, want %x", i, vals[i], want)
		}
		if one := readOne(t, tp, i); one != vals[i] {
			t.Errorf("PCR %d read alone = %x, read with others = %x", i, one, vals[i])
		}
	}
}

func TestBadIndexRejected(t *testing.T) {
	tp, _ := openSwtpm(t)
	for _, i := range []int{-1, 24, 1000} {
		if err := tp.ExtendPCR(i, [32]byte{}); err == nil || !strings.Contains(err.Error(), "out of range") {
			t.Errorf("extend PCR %d: err = %v, want out of range", i, err)
		}
		if _, err := tp.ReadPCRs([]int{0, i}); err == nil || !strings.Contains(err.Error(), "out of range") {
			t.Errorf("read PCR %d: err = %v, want out of range", i, err)
		}
	}
	// PCR 17 exists but refuses extends from locality 0: the TPM's own
	// error must come back, naming the PCR.
	if err := tp.ExtendPCR(17, [32]byte{1}); err == nil || !strings.Contains(err.Error(), "extend PCR 17") {
		t.Errorf("extend PCR 17 at locality 0: err = %v, want a TPM error naming PCR 17", err)
	}
}

func TestAbsentSocketIsClear(t *testing.T) {
	dir := t.TempDir()
	_, err := tpm.Open(tpm.Config{Socket: dir + "/no.sock"})
	if !errors.Is(err, tpm.ErrNoTPM) || !strings.Contains(err.Error(), dir+"/no.sock") || !strings.Contains(err.Error(), "swtpm") {
		t.Errorf("open absent socket: err = %v, want ErrNoTPM naming the path and swtpm", err)
	}

	// A TCP port nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	if _, err := tpm.Open(tpm.Config{TCP: addr}); !errors.Is(err, tpm.ErrNoTPM) || !strings.Contains(err.Error(), addr) {
		t.Errorf("open closed TCP port: err = %v, want ErrNoTPM naming %s", err, addr)
	}

	if _, err := tpm.Open(tpm.Config{Device: dir + "/tpmrm0"}); !errors.Is(err, tpm.ErrNoTPM) || !strings.Contains(err.Error(), dir+"/tpmrm0") {
		t.Errorf("open absent device: err = %v, want ErrNoTPM naming the device", err)
	}
}

func TestKilledSwtpmIsClear(t *testing.T) {
	tp, sw := openSwtpm(t)
	if err := tp.ExtendPCR(16, [32]byte{1}); err != nil {
		t.Fatal(err)
	}
	sw.Stop()
	err := tp.ExtendPCR(16, [32]byte{2})
	if err == nil || !strings.Contains(err.Error(), sw.Socket) || !strings.Contains(err.Error(), "extend PCR 16") {
		t.Errorf("extend after swtpm died: err = %v, want an error naming the socket and the PCR", err)
	}
	if _, err := tp.ReadPCRs([]int{16}); err == nil || !strings.Contains(err.Error(), sw.Socket) {
		t.Errorf("read after swtpm died: err = %v, want an error naming the socket", err)
	}
}

func TestClosedTPM(t *testing.T) {
	tp, _ := openSwtpm(t)
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tp.ExtendPCR(16, [32]byte{}); err == nil {
		t.Error("extend after Close succeeded")
	}
	if err := tp.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestNoneSaysNothingIsHardwareRooted(t *testing.T) {
	tp, err := tpm.Open(tpm.Config{None: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, info := range []tpm.Info{tp.Info(), tpm.InfoOf(nil)} {
		if info.Kind != tpm.KindNone || info.HardwareRooted() || !strings.Contains(info.String(), "nothing is hardware-rooted") {
			t.Errorf("no-TPM info = %+v %q", info, info)
		}
	}
	if err := tp.ExtendPCR(10, [32]byte{}); err != nil {
		t.Errorf("no-TPM extend: %v (the caller's log must still be kept)", err)
	}
	if _, err := tp.ReadPCRs([]int{10}); !errors.Is(err, tpm.ErrNoTPM) {
		t.Errorf("no-TPM read: err = %v, want ErrNoTPM", err)
	}
}

func TestConflictingConfigRejected(t *testing.T) {
	for _, cfg := range []tpm.Config{
		{Socket: "/a", TCP: "b:1"},
		{Socket: "/a", None: true},
		{TCP: "b:1", None: true},
	} {
		if _, err := tpm.Open(cfg); err == nil || !strings.Contains(err.Error(), "more than one") {
			t.Errorf("Open(%+v): err = %v, want a conflict", cfg, err)
		}
	}
}
