package measure

import (
	"bytes"
	"crypto"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/google/go-attestation/attest"

	wire "github.com/bulwark-project/bulwark/internal/attest"
	"github.com/bulwark-project/bulwark/internal/measure/eventlog"
	"github.com/bulwark-project/bulwark/internal/tpm/swtpmtest"
)

func TestRuntimeMismatchEvent(t *testing.T) {
	rc := wire.RuntimeCheck{Process: "qemu", VM: "web \"1\"", PID: 42, Binary: "/usr/bin/qemu-system-x86_64",
		Mismatches: []wire.TextMismatch{{Object: "/usr/bin/qemu-system-x86_64", Offset: 0x4a10, Length: 1, Symbol: "main+0x10", Expected: "90", Found: "cc"}, {Offset: 0x5000}}}
	d, data, ok := RuntimeMismatchEvent(rc)
	want := `runtime-text-mismatch process=qemu vm="web \"1\"" pid=42 binary="/usr/bin/qemu-system-x86_64" first_offset=0x4a10 count=2`
	if !ok || data != want {
		t.Fatalf("data %q\nwant %q", data, want)
	}
	rc.VM, rc.Process = "", "daemon"
	_, data, _ = RuntimeMismatchEvent(rc)
	if want := `runtime-text-mismatch process=daemon pid=42 binary="/usr/bin/qemu-system-x86_64" first_offset=0x4a10 count=2`; data != want {
		t.Fatalf("daemon: %q", data)
	}
	// Same finding, same digest; other bytes found, another digest.
	rc.VM, rc.Process = "web \"1\"", "qemu"
	if d2, _, _ := RuntimeMismatchEvent(rc); d2 != d {
		t.Error("digest not stable")
	}
	rc.Mismatches[0].Found = "cd"
	if d2, _, _ := RuntimeMismatchEvent(rc); d2 == d {
		t.Error("digest ignores the bytes found")
	}
	if _, _, ok := RuntimeMismatchEvent(wire.RuntimeCheck{Process: "daemon"}); ok {
		t.Error("clean check has an event")
	}
}

// TestRecordRuntimeMismatch extends a real swtpm's PCR 13 and checks that
// the TPM's value is the log's replay, with go-attestation as the second
// reader.
func TestRecordRuntimeMismatch(t *testing.T) {
	tp := openTPM(t, swtpmtest.Start(t))
	m, err := Open(filepath.Join(t.TempDir(), "measure"), tp, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.RecordRuntimeMismatch(wire.RuntimeCheck{Process: "daemon"}); !errors.Is(err, ErrNoMismatch) {
		t.Fatalf("clean check: %v, want ErrNoMismatch", err)
	}
	rc := wire.RuntimeCheck{Process: "qemu", VM: "a", PID: 7, Binary: "/q",
		Mismatches: []wire.TextMismatch{{Object: "/q", Offset: 0x1234, Length: 2, Expected: "9090", Found: "cccc"}}}
	if err := m.RecordRuntimeMismatch(rc); err != nil {
		t.Fatal(err)
	}
	raw, err := m.EventLog()
	if err != nil {
		t.Fatal(err)
	}
	events, err := eventlog.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	last := events[len(events)-1]
	d, data, _ := RuntimeMismatchEvent(rc)
	if last.PCR != PCRRuntime || string(last.Data) != data || last.Digest != d {
		t.Fatalf("last event %+v, want PCR 13 %q", last, data)
	}
	cur, err := tp.ReadPCRs([]int{PCRRuntime})
	if err != nil {
		t.Fatal(err)
	}
	if rep := eventlog.Replay(events)[PCRRuntime]; rep != cur[PCRRuntime] || rep == ([32]byte{}) {
		t.Fatalf("PCR 13 is %x, the log replays to %x", cur[PCRRuntime], rep)
	}
	el, err := attest.ParseEventLog(raw)
	if err != nil {
		t.Fatal(err)
	}
	v := cur[PCRRuntime]
	if _, err := el.Verify([]attest.PCR{{Index: PCRRuntime, Digest: bytes.Clone(v[:]), DigestAlg: crypto.SHA256}}); err != nil {
		t.Fatalf("go-attestation: %v", err)
	}
}
