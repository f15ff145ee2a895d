package measure

import (
	"bytes"
	"crypto"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-attestation/attest"

	"github.com/bulwark-project/bulwark/internal/measure/eventlog"
	"github.com/bulwark-project/bulwark/internal/tpm"
	"github.com/bulwark-project/bulwark/internal/tpm/swtpmtest"
	"github.com/bulwark-project/bulwark/internal/vm"
)

func openTPM(t *testing.T, in *swtpmtest.Instance) tpm.TPM {
	t.Helper()
	tp, err := tpm.Open(in.Config())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tp.Close() })
	return tp
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func launchVM(t *testing.T, m *Measurer, name, kernel, initrd string) {
	t.Helper()
	spec := vm.Spec{Name: name, Kernel: kernel, Initrd: initrd, Cmdline: "console=ttyS0", VCPUs: 1, MemoryMiB: 64,
		Disks: []vm.Disk{{Path: "/img/root.raw", ReadOnly: true}, {Volume: "data"}}}
	base := strings.Repeat("ab", 32) // a read-only base with a recorded content digest
	l, err := m.BeginLaunch(spec, [][]DiskLayer{nil, {{Format: "raw", ReadOnly: true, Dev: 1, Ino: 1, Size: 512, ContentSHA256: base}, {Format: "qcow2", Dev: 1, Ino: 2, Size: 3}}})
	if err != nil {
		t.Fatal(err)
	}
	for role, p := range map[string]string{"kernel": kernel, "initrd": initrd} {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Seek(3, 0); err != nil {
			t.Fatal(err)
		}
		if err := l.Measure(role, f); err != nil {
			t.Fatal(err)
		}
		if off, _ := f.Seek(0, 1); off != 3 {
			t.Errorf("%s: offset moved to %d", role, off)
		}
		f.Close()
		if !l.Measured(role) {
			t.Errorf("%s not recorded as measured", role)
		}
	}
}

// TestMeasuredLaunchVerifies measures a host and two VM launches into a
// real swtpm, then has go-attestation verify the log against the TPM's
// actual PCR 11, 12 and 13.
func TestMeasuredLaunchVerifies(t *testing.T) {
	in := swtpmtest.Start(t)
	tp := openTPM(t, in)
	dir := t.TempDir()
	files := t.TempDir()
	kernel := writeFile(t, files, "vmlinuz", "kernel bytes")
	initrd := writeFile(t, files, "initrd", "initrd bytes")
	qemu := writeFile(t, files, "qemu", "qemu bytes")
	m, err := Open(filepath.Join(dir, "measure"), tp, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	rom, err := os.Open(writeFile(t, files, "qboot.rom", "firmware bytes"))
	if err != nil {
		t.Fatal(err)
	}
	defer rom.Close()
	if err := m.MeasureHost(Host{QEMU: qemu, Firmware: []Firmware{{Name: "bios-microvm.bin", File: rom}}, Seccomp: map[string][]byte{"vmm": []byte("{}"), "monitor": []byte("[]")}, Jail: true, CgroupBase: "bulwark"}); err != nil {
		t.Fatal(err)
	}
	launchVM(t, m, "a", kernel, initrd)
	launchVM(t, m, "b", kernel, initrd)

	raw, err := m.EventLog()
	if err != nil {
		t.Fatal(err)
	}
	cur, err := tp.ReadPCRs(pcrs)
	if err != nil {
		t.Fatal(err)
	}
	var want []attest.PCR
	for _, i := range pcrs {
		v := cur[i]
		want = append(want, attest.PCR{Index: i, Digest: bytes.Clone(v[:]), DigestAlg: crypto.SHA256})
	}
	el, err := attest.ParseEventLog(raw)
	if err != nil {
		t.Fatalf("go-attestation ParseEventLog: %v", err)
	}
	ev, err := el.Verify(want)
	if err != nil {
		t.Fatalf("go-attestation Verify against the TPM: %v", err)
	}
	// 6 host events; per VM definition, cmdline, 2 disks, 1 disk content,
	// kernel, initrd.
	if len(ev) != 6+2*7 {
		t.Errorf("go-attestation verified %d events, want %d", len(ev), 6+2*7)
	}
	st, err := m.Status()
	if err != nil || !st.Agree || st.HardwareRooted {
		t.Fatalf("Status = %+v, %v; want agreeing, not hardware-rooted", st, err)
	}

	// A restart with the log intact keeps appending.
	m.Close()
	m2, err := Open(filepath.Join(dir, "measure"), tp, slog.Default())
	if err != nil {
		t.Fatalf("reopen over a valid log: %v", err)
	}
	launchVM(t, m2, "c", kernel, initrd)
	if st, err := m2.Status(); err != nil || !st.Agree {
		t.Fatalf("after reopen: %+v, %v", st, err)
	}
	m2.Close()
}

// TestTamperedLogMovedAside edits one byte of a digest: at the next start
// the log no longer replays, is renamed aside, and since the PCRs are not
// fresh, measuring is refused.
func TestTamperedLogMovedAside(t *testing.T) {
	in := swtpmtest.Start(t)
	tp := openTPM(t, in)
	dir := filepath.Join(t.TempDir(), "measure")
	m, err := Open(dir, tp, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	files := t.TempDir()
	launchVM(t, m, "a", writeFile(t, files, "k", "k"), writeFile(t, files, "i", "i"))
	m.Close()
	path := filepath.Join(dir, LogFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	events, err := eventlog.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	events[1].Digest[0] ^= 1 // the command line's digest
	if raw, err = eventlog.Marshal(events); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, tp, slog.Default()); !errors.Is(err, ErrPCRsNotFresh) {
		t.Fatalf("Open over a tampered log: %v, want ErrPCRsNotFresh", err)
	}
	ents, _ := os.ReadDir(dir)
	aside := 0
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), LogFile+".broken-") {
			aside++
		}
	}
	if aside != 1 {
		t.Errorf("%d logs moved aside, want 1 (%v)", aside, ents)
	}
}

// TestNoTPMKeepsLog: the no-TPM mode logs and says nothing is rooted.
func TestNoTPMKeepsLog(t *testing.T) {
	m, err := Open(t.TempDir(), tpm.None, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	files := t.TempDir()
	launchVM(t, m, "a", writeFile(t, files, "k", "k"), writeFile(t, files, "i", "i"))
	st, err := m.Status()
	if err != nil || st.Agree || st.HardwareRooted || st.Mismatch == "" {
		t.Fatalf("Status = %+v, %v", st, err)
	}
}
