package measure

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/attest/policy"
	"github.com/bulwark-project/bulwark/internal/measure/eventlog"
	"github.com/bulwark-project/bulwark/internal/tpm/swtpmtest"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// logEvents parses m's log.
func logEvents(t *testing.T, m *Measurer) []eventlog.Event {
	t.Helper()
	raw, err := m.EventLog()
	if err != nil {
		t.Fatal(err)
	}
	events, err := eventlog.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return events
}

// checkEvents compares events with want (PCR, data, digest) one by one,
// and has the verifier's parser (internal/attest/policy) read each one.
func checkEvents(t *testing.T, events []eventlog.Event, want []eventlog.Event) {
	t.Helper()
	if len(events) != len(want) {
		var got []string
		for _, e := range events {
			got = append(got, string(e.Data))
		}
		t.Fatalf("%d events, want %d:\n%s", len(events), len(want), strings.Join(got, "\n"))
	}
	for i, w := range want {
		e := events[i]
		if e.PCR != w.PCR || string(e.Data) != string(w.Data) || (w.Digest != [32]byte{} && e.Digest != w.Digest) {
			t.Errorf("event %d: PCR %d %q %x\nwant   PCR %d %q %x", i, e.PCR, e.Data, e.Digest, w.PCR, w.Data, w.Digest)
		}
		if _, err := policy.ParseEventData(e.PCR, e.Data); err != nil {
			t.Errorf("event %d %q: the verifier's parser refuses it: %v", i, e.Data, err)
		}
	}
}

func ev(pcr uint32, data string, digest [32]byte) eventlog.Event {
	return eventlog.Event{PCR: pcr, Data: []byte(data), Digest: digest}
}

// TestHostFirmware: each firmware file follows the QEMU binary in PCR 11,
// hashed from the open descriptor given (not re-opened by path), with its
// QEMU name and resolved path; the TPM's PCR 11 replays.
func TestHostFirmware(t *testing.T) {
	tp := openTPM(t, swtpmtest.Start(t))
	files := t.TempDir()
	exe := writeFile(t, files, "bulwark", "bulwark bytes")
	qemu := writeFile(t, files, "qemu", "qemu bytes")
	rom := writeFile(t, files, "qboot.rom", "qboot bytes")
	if err := os.Symlink("qboot.rom", filepath.Join(files, "bios-microvm.bin")); err != nil {
		t.Fatal(err)
	}
	romF, err := os.Open(rom) // what qemu.PinnedFirmware hands over: the resolved path, open
	if err != nil {
		t.Fatal(err)
	}
	defer romF.Close()
	// Replaced on disk after it was opened: the open file is what counts.
	os.Remove(rom)
	writeFile(t, files, "qboot.rom", "other bytes")
	m, err := Open(filepath.Join(t.TempDir(), "measure"), tp, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	h := Host{Exe: exe, QEMU: qemu, Firmware: []Firmware{{Name: "bios-microvm.bin", File: romF}},
		Seccomp: map[string][]byte{"vmm": []byte("{}")}, Jail: true, CgroupBase: "bulwark"}
	if err := m.MeasureHost(h); err != nil {
		t.Fatal(err)
	}
	sum := func(s string) [32]byte { return sha256.Sum256([]byte(s)) }
	checkEvents(t, logEvents(t, m), []eventlog.Event{
		ev(11, `bulwark-binary path=`+quote(exe)+` size=13`, sum("bulwark bytes")),
		ev(11, `qemu-binary path=`+quote(qemu)+` size=10`, sum("qemu bytes")),
		ev(11, `qemu-firmware name=bios-microvm.bin path=`+quote(rom)+` size=11`, sum("qboot bytes")),
		ev(11, `seccomp-filter name=vmm size=2`, sum("{}")),
		ev(11, "hardening-config "+quote(h.Hardening()), sum(h.Hardening())),
	})
	if st, err := m.Status(); err != nil || !st.Agree {
		t.Fatalf("Status = %+v, %v", st, err)
	}

	for _, bad := range []Firmware{{Name: "../qboot.rom", File: romF}, {Name: "a b", File: romF}, {Name: "", File: romF}, {Name: "x.bin"}} {
		h.Firmware = []Firmware{bad}
		if err := m.MeasureHost(h); err == nil || !strings.Contains(err.Error(), "qemu-firmware") {
			t.Errorf("firmware %+v: %v, want refused", bad, err)
		}
	}
}

// TestDiskContent: after each disk's identity event come its read-only
// layers' recorded content digests, base first; layers without one and
// writable layers add nothing; a writable layer with a digest, or a
// malformed digest, refuses the launch.
func TestDiskContent(t *testing.T) {
	tp := openTPM(t, swtpmtest.Start(t))
	m, err := Open(filepath.Join(t.TempDir(), "measure"), tp, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	baseSum, otherSum := sha256.Sum256([]byte("base image")), sha256.Sum256([]byte("iso"))
	base, other := hex.EncodeToString(baseSum[:]), hex.EncodeToString(otherSum[:])
	spec := vm.Spec{Name: "web", Kernel: "/k", Cmdline: "quiet", VCPUs: 1, MemoryMiB: 64, Disks: []vm.Disk{
		{Volume: "default/web-root"},               // clone of an imported base
		{Path: "/srv/scratch.raw"},                 // host path: identity only
		{Volume: "default/iso", ReadOnly: true},    // an imported volume, attached read-only
		{Volume: "default/data"},                   // created here: no digest
		{Volume: "default/frozen", ReadOnly: true}, // read-only, no digest on record
	}}
	vols := [][]DiskLayer{
		{{Format: "qcow2", ReadOnly: true, Dev: 1, Ino: 10, Size: 100, ContentSHA256: base}, {Format: "qcow2", Dev: 1, Ino: 11, Size: 5}},
		nil,
		{{Format: "raw", ReadOnly: true, Dev: 1, Ino: 12, Size: 7, ContentSHA256: other}},
		{{Format: "qcow2", Dev: 1, Ino: 13, Size: 9}},
		{{Format: "qcow2", ReadOnly: true, Dev: 1, Ino: 14, Size: 9}},
	}
	if _, err := m.BeginLaunch(spec, vols); err != nil {
		t.Fatal(err)
	}
	events := logEvents(t, m)
	if len(events) < 2 || !strings.HasPrefix(string(events[0].Data), "vm-definition ") || !strings.HasPrefix(string(events[1].Data), "vm-cmdline ") {
		t.Fatalf("launch does not start with definition and command line: %d events", len(events))
	}
	checkEvents(t, events[2:], []eventlog.Event{
		ev(12, `vm-disk vm="web" index=0 digest-of=identity volume="default/web-root" ro=false layer0=qcow2,ro=true,dev=1,ino=10,size=100 layer1=qcow2,ro=false,dev=1,ino=11,size=5`, [32]byte{}),
		ev(12, `vm-disk-content vm="web" index=0 layer=0 digest-of=content`, baseSum),
		ev(12, `vm-disk vm="web" index=1 digest-of=identity path="/srv/scratch.raw" ro=false`, [32]byte{}),
		ev(12, `vm-disk vm="web" index=2 digest-of=identity volume="default/iso" ro=true layer0=raw,ro=true,dev=1,ino=12,size=7`, [32]byte{}),
		ev(12, `vm-disk-content vm="web" index=2 layer=0 digest-of=content`, otherSum),
		ev(12, `vm-disk vm="web" index=3 digest-of=identity volume="default/data" ro=false layer0=qcow2,ro=false,dev=1,ino=13,size=9`, [32]byte{}),
		ev(12, `vm-disk vm="web" index=4 digest-of=identity volume="default/frozen" ro=true layer0=qcow2,ro=true,dev=1,ino=14,size=9`, [32]byte{}),
	})
	if st, err := m.Status(); err != nil || !st.Agree {
		t.Fatalf("Status = %+v, %v", st, err)
	}

	for name, l := range map[string]DiskLayer{
		"writable with a digest": {Format: "qcow2", ContentSHA256: base},
		"upper-case digest":      {Format: "raw", ReadOnly: true, ContentSHA256: strings.ToUpper(base)},
		"short digest":           {Format: "raw", ReadOnly: true, ContentSHA256: base[:62]},
		"not hex":                {Format: "raw", ReadOnly: true, ContentSHA256: strings.Repeat("g", 64)},
	} {
		spec := vm.Spec{Name: "bad", Disks: []vm.Disk{{Volume: "default/x"}}}
		if _, err := m.BeginLaunch(spec, [][]DiskLayer{{l}}); err == nil || !strings.Contains(err.Error(), "disks[0]") {
			t.Errorf("%s: BeginLaunch = %v, want refused naming the disk", name, err)
		}
	}
}

// TestRestartRulePCR13: PCR 13 is held to the same rule as 11 and 12. A
// log that explains it is kept; an extend of PCR 13 no log explains
// makes the log move aside and Open refuse; a TPM whose only non-zero PCR
// is 13 is not fresh either.
func TestRestartRulePCR13(t *testing.T) {
	in := swtpmtest.Start(t)
	tp := openTPM(t, in)
	dir := filepath.Join(t.TempDir(), "measure")
	m, err := Open(dir, tp, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Extend(PCRRuntime, sha256.Sum256([]byte("finding")), `runtime-text-mismatch process=qemu pid=1 binary="/q" first_offset=0x10 count=1`); err != nil {
		t.Fatal(err)
	}
	st, err := m.Status()
	if err != nil || !st.Agree || st.PCRs[PCRRuntime] == ([32]byte{}) || st.Replayed[PCRRuntime] != st.PCRs[PCRRuntime] {
		t.Fatalf("Status with a PCR 13 event = %+v, %v", st, err)
	}
	m.Close()
	if m, err = Open(dir, tp, slog.Default()); err != nil {
		t.Fatalf("reopen over a log that explains PCR 13: %v", err)
	}
	m.Close()

	if err := tp.ExtendPCR(PCRRuntime, sha256.Sum256([]byte("unlogged"))); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, tp, slog.Default()); !errors.Is(err, ErrPCRsNotFresh) || !strings.Contains(err.Error(), "PCR 1") {
		t.Fatalf("Open with an unlogged PCR 13 extend: %v, want ErrPCRsNotFresh", err)
	}
	if ents, _ := filepath.Glob(filepath.Join(dir, LogFile+".broken-*")); len(ents) != 1 {
		t.Errorf("logs moved aside: %v, want 1", ents)
	}

	// Only PCR 13 extended, no log at all.
	tp2 := openTPM(t, swtpmtest.Start(t))
	if err := tp2.ExtendPCR(PCRRuntime, sha256.Sum256([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	_, err = Open(filepath.Join(t.TempDir(), "measure"), tp2, slog.Default())
	if !errors.Is(err, ErrPCRsNotFresh) || !strings.Contains(err.Error(), "PCR 13") {
		t.Fatalf("Open with only PCR 13 extended: %v, want ErrPCRsNotFresh naming PCR 13", err)
	}
}

// FuzzParseDigest: a digest is accepted only in the one spelling it is
// written back as.
func FuzzParseDigest(f *testing.F) {
	f.Add(strings.Repeat("ab", 32))
	f.Add(strings.Repeat("AB", 32))
	f.Add(strings.Repeat("a", 63))
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseDigest(s)
		if err == nil && hex.EncodeToString(d[:]) != s {
			t.Fatalf("parseDigest(%q) accepted as %x", s, d)
		}
		if err != nil && len(err.Error()) > 2000 {
			t.Fatalf("unbounded error for %d bytes", len(s))
		}
	})
}
