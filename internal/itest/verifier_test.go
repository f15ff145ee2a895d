package itest

import (
	"bufio"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/api"
	"github.com/bulwark-project/bulwark/internal/attest"
	"github.com/bulwark-project/bulwark/internal/tpm/swtpmtest"
	"github.com/bulwark-project/bulwark/internal/verifier"
)

// copyFile copies src to dst (0644).
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// mappedBase is the start address of pid's mapping of a file whose path
// ends in name, at file offset 0.
func mappedBase(t *testing.T, pid int, name string) uint64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) >= 6 && fl[2] == "00000000" && strings.HasSuffix(fl[5], "/"+name) {
			start, _, _ := strings.Cut(fl[0], "-")
			v, err := strconv.ParseUint(start, 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("pid %d maps no %s at offset 0", pid, name)
	return 0
}

// patchText flips one byte of a running process's code through
// /proc/PID/mem (as root) and returns a function that restores it.
func patchText(t *testing.T, pid int, addr uint64) func() {
	t.Helper()
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/mem", pid), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	if _, err := f.ReadAt(b[:], int64(addr)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{b[0] ^ 0xff}, int64(addr)); err != nil {
		t.Fatal(err)
	}
	return func() {
		f.WriteAt(b[:], int64(addr))
		f.Close()
	}
}

// dynSym is the value of a dynamic symbol of an ELF file.
func dynSym(t *testing.T, path, name string) uint64 {
	t.Helper()
	ef, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	syms, err := ef.DynamicSymbols()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range syms {
		if s.Name == name {
			return s.Value
		}
	}
	t.Fatalf("%s has no dynamic symbol %s", path, name)
	return 0
}

func vmVerdict(v attest.Verdict, name string) (attest.Status, string) {
	for _, vv := range v.VMs {
		if vv.Name == name {
			var rs []string
			for _, r := range vv.Reasons {
				rs = append(rs, r.Component+": "+r.Message+" found="+r.Found)
			}
			return vv.Status, strings.Join(rs, "\n")
		}
	}
	return "", ""
}

func hostReasons(v attest.Verdict) string {
	var rs []string
	for _, r := range v.Reasons {
		rs = append(rs, r.Component+": "+r.Message+" found="+r.Found)
	}
	return strings.Join(rs, "\n")
}

// TestRemoteAttestation runs the daemon on a real swtpm with real guests
// and a verifier service driven through its CLI: registration with a
// least-privilege token, a golden policy from the host and its boot files,
// trusted verdicts, a VM booted with a replaced initrd failing by name, a
// guest kernel patch reported by introspection failing its VM, a patched
// byte in the running QEMU making the host untrusted (runtime integrity,
// PCR 13) and the daemon then refusing VM starts, and a dead swtpm giving
// an unknown verdict with the reason.
func TestRemoteAttestation(t *testing.T) {
	sw := swtpmtest.Start(t)
	h := newHost(t, "--tpm", "swtpm:"+sw.Socket, "--runtime-check-interval", "2s")

	// The verifier's daemon identity holds attestation rights only.
	h.mustCLI(nil, "user", "create", "verifier")
	h.mustCLI(nil, "role", "create", "attestor")
	h.mustCLI(nil, "role", "add", "attestor", "Attestation.Read")
	h.mustCLI(nil, "role", "add", "attestor", "Attestation.Config")
	h.mustCLI(nil, "perm", "grant", "--user", "verifier", "--role", "attestor", "--path", "/attestation")
	tokFile := filepath.Join(h.dir, "verifier.token")
	if err := os.WriteFile(tokFile, []byte(h.tokenFor("verifier")), 0o600); err != nil {
		t.Fatal(err)
	}

	// VM b boots a copy of the initrd that the test will replace.
	bInitrd := filepath.Join(h.dir, "b-initrd.img")
	copyFile(t, filepath.Join(imgDir, "initrd.img"), bInitrd)
	h.createVM("a")
	h.createVM("b", "--initrd", bInitrd)
	h.mustCLI(nil, "vm", "start", "a")
	h.mustCLI(nil, "vm", "start", "b")

	// Golden values: this host's PCR 11 (trust on first use) and the
	// test's boot files.
	out, errs, err := h.cli("attest", "golden", "--boot", "test="+filepath.Join(imgDir, "vmlinuz")+","+filepath.Join(imgDir, "initrd.img"))
	if err != nil {
		t.Fatalf("attest golden: %v\n%s", err, errs)
	}
	polFile := filepath.Join(h.dir, "policy.json")
	if err := os.WriteFile(polFile, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}

	// The verifier: its own store, polling every 500 ms, its CLI.
	vdir := filepath.Join(h.dir, "verifier")
	vsock := filepath.Join(h.dir, "vsock", "v.sock")
	svc, err := verifier.Open(t.Context(), verifier.Config{Dir: vdir, Interval: 500 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- svc.Serve(ctx, vsock) }()
	t.Cleanup(func() { cancel(); <-served; svc.Close() })
	h.waitFor("verifier socket", 10*time.Second, func() bool { _, err := os.Stat(vsock); return err == nil })
	vcli := func(v any, args ...string) {
		t.Helper()
		h.mustCLI(v, append([]string{"verifier", "--verifier-socket", vsock}, args...)...)
	}
	vcli(nil, "policy", "set", polFile)
	vcli(nil, "host", "add", "h1", "--url", "unix:"+h.socket, "--token-file", tokFile)
	poll := func() attest.Verdict {
		t.Helper()
		var v attest.Verdict
		vcli(&v, "poll", "h1")
		return v
	}

	v := poll()
	if v.Status != attest.Trusted {
		rs, _, _ := h.cli("attest", "status", "-o", "json")
		t.Fatalf("clean host: %s\n%s\nattest status:\n%s", v.Status, hostReasons(v), rs)
	}
	for _, n := range []string{"a", "b"} {
		if st, why := vmVerdict(v, n); st != attest.Trusted {
			t.Fatalf("clean vm %s: %s\n%s", n, st, why)
		}
	}
	var st api.AgentStatus
	h.waitFor("the daemon to hold the trusted verdict", 10*time.Second, func() bool {
		h.mustCLI(&st, "attest", "status")
		return st.Verdict != nil && st.Verdict.Status == attest.Trusted
	})
	var q map[string]any
	h.mustCLI(&q, "attest", "quote")
	if q["verified"] != true {
		t.Fatalf("attest quote: %v", q)
	}

	// b restarts on a replaced initrd: b fails naming its initrd; a and
	// the host stay trusted.
	h.mustCLI(nil, "vm", "stop", "b", "--force")
	f, err := os.OpenFile(bInitrd, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(make([]byte, 512))
	f.Close()
	h.mustCLI(nil, "vm", "start", "b")
	v = poll()
	stB, whyB := vmVerdict(v, "b")
	stA, _ := vmVerdict(v, "a")
	if v.Status != attest.Trusted || stA != attest.Trusted || stB != attest.Untrusted || !strings.Contains(whyB, "vm-initrd") {
		t.Fatalf("replaced initrd: host %s, a %s, b %s\n%s\n%s", v.Status, stA, stB, whyB, hostReasons(v))
	}
	t.Logf("b with a replaced initrd: %s", whyB)
	h.mustCLI(nil, "vm", "stop", "b", "--force")

	// Introspection finds patched guest kernel text in a: a fails with
	// the finding; restored and rescanned, a is trusted again.
	h.waitConsole("a", "bulwark-heartbeat", 1)
	// A first scan takes the text baseline (until issue 16 derives it
	// from the image).
	if rep := h.vmiCheck("a"); len(rep.Findings) != 0 {
		t.Fatalf("clean guest a:\n%s", kinds(rep))
	}
	va := h.vm("a")
	rk := newRootkit(t, fmt.Sprintf("/proc/%d/fd/3", va.Runtime.PID), 256<<20, filepath.Join(imgDir, "vmlinuz"))
	acct, err := rk.k.Sym("__x64_sys_acct")
	if err != nil {
		t.Fatal(err)
	}
	var b1 [1]byte
	rk.k.Read(acct+1, b1[:])
	rk.write(acct+1, []byte{b1[0] ^ 0xff})
	if rep := h.vmiCheck("a"); !strings.Contains(kinds(rep), "kernel_text_modified") {
		t.Fatalf("the patch was not found by introspection:\n%s", kinds(rep))
	}
	v = poll()
	if stA, whyA := vmVerdict(v, "a"); stA != attest.Untrusted || !strings.Contains(whyA, "kernel_text_modified") {
		t.Fatalf("introspection finding: a %s\n%s", stA, whyA)
	}
	rk.write(acct+1, b1[:])
	h.vmiCheck("a")
	if stA, whyA := vmVerdict(poll(), "a"); stA != attest.Trusted {
		t.Fatalf("after restoring: a %s\n%s", stA, whyA)
	}

	// A byte of the running QEMU's code (a function the guest cannot
	// reach: audio capture, with no audio device) is patched: the runtime
	// check finds it, PCR 13 records it, the host is untrusted.
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Fatal(err)
	}
	off := dynSym(t, qemu, "AUD_add_capture")
	restore := patchText(t, va.Runtime.PID, mappedBase(t, va.Runtime.PID, filepath.Base(qemu))+off+1)
	defer restore()
	h.waitFor("the verifier to mark the host untrusted", 30*time.Second, func() bool {
		v = poll()
		return v.Status == attest.Untrusted
	})
	if why := hostReasons(v); !strings.Contains(why, "runtime") {
		t.Fatalf("untrusted for another reason:\n%s", why)
	}
	t.Logf("patched QEMU: %s", hostReasons(v))
	// The daemon refuses VM starts while untrusted.
	h.waitFor("the daemon to hold the untrusted verdict", 10*time.Second, func() bool {
		h.mustCLI(&st, "attest", "status")
		return st.Verdict != nil && st.Verdict.Status == attest.Untrusted
	})
	if _, errs, err := h.cli("vm", "start", "b"); err == nil || !strings.Contains(errs, "untrusted") {
		t.Fatalf("vm start on an untrusted host: err %v: %s", err, errs)
	}
	var pcrs api.PCRsResponse
	h.mustCLI(&pcrs, "attest", "pcrs")
	if !pcrs.Agree || pcrs.PCRs["13"] == strings.Repeat("0", 64) {
		t.Fatalf("PCR 13 after a runtime mismatch: %+v", pcrs)
	}
	// Both ends audited the change.
	aud, _, _ := h.cli("audit", "list", "-o", "json")
	if !strings.Contains(aud, "attestation") || !strings.Contains(aud, "untrusted") {
		t.Errorf("daemon audit has no verdict record:\n%.2000s", aud)
	}
	var hist []attest.Verdict
	vcli(&hist, "history", "h1")
	if len(hist) < 3 || hist[0].Status != attest.Untrusted {
		t.Errorf("verifier history: %d entries, newest %v", len(hist), hist)
	}

	// The TPM dies: unknown, with the reason.
	sw.Stop()
	v = poll()
	if v.Status != attest.Unknown || !strings.Contains(hostReasons(v), "reachability") {
		t.Fatalf("swtpm killed: %s\n%s", v.Status, hostReasons(v))
	}
	t.Logf("swtpm killed: %s", hostReasons(v))
	b, _ := json.Marshal(v)
	t.Logf("last verdict: %s", b)
}
