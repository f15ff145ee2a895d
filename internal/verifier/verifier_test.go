package verifier

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/attest"
	"github.com/bulwark-project/bulwark/internal/attest/policy"
	"github.com/bulwark-project/bulwark/internal/measure"
	"github.com/bulwark-project/bulwark/internal/measure/eventlog"
	"github.com/bulwark-project/bulwark/internal/tpm"
	"github.com/bulwark-project/bulwark/internal/tpm/swtpmtest"
)

// testHost is a host in-process: a real swtpm, the daemon's Measurer and
// Attester, and a report the test controls. It stands in for the daemon's
// HTTP transport only.
type testHost struct {
	t   testing.TB
	sw  *swtpmtest.Instance
	tpm tpm.TPM
	m   *measure.Measurer
	att *tpm.Attester

	mu       sync.Mutex
	report   attest.Report
	verdicts []attest.Verdict
	down     bool
	// tamper, if set, edits evidence before it is returned.
	tamper func(*attest.Evidence)
}

func newTestHost(t testing.TB) *testHost {
	t.Helper()
	sw := swtpmtest.Start(t)
	tp, err := tpm.Open(sw.Config())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tp.Close() })
	dir := t.TempDir()
	m, err := measure.Open(filepath.Join(dir, "measure"), tp, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	att, _, err := tpm.NewAttester(tp, filepath.Join(dir, "ak.blob"), slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { att.Close() })
	h := &testHost{t: t, sw: sw, tpm: tp, m: m, att: att}
	h.measureHost("qemu-v1")
	return h
}

func digest(s string) [32]byte { return sha256.Sum256([]byte(s)) }

func hexd(s string) string { d := digest(s); return hex.EncodeToString(d[:]) }

// measureHost extends PCR 11 as the daemon does at start, with the QEMU
// binary's content standing as qemu.
func (h *testHost) measureHost(qemu string) {
	h.t.Helper()
	for _, e := range []struct{ d, data string }{
		{"bulwark", `bulwark-binary path="/proc/self/exe" size=7`},
		{qemu, `qemu-binary path="/usr/bin/qemu-system-x86_64" size=7`},
		{"filter-vmm", `seccomp-filter name=vmm size=10`},
		{"cgroup_base=b\njail=true\nseccomp=vmm\n", `hardening-config "cgroup_base=b\njail=true\nseccomp=vmm\n"`},
	} {
		if err := h.m.Extend(attest.PCRHost, digest(e.d), e.data); err != nil {
			h.t.Fatal(err)
		}
	}
}

// launch extends PCR 12 as a VM start does and marks the VM running.
func (h *testHost) launch(vm, kernel, initrd string) {
	h.t.Helper()
	for _, e := range []struct{ d, data string }{
		{"def-" + vm, fmt.Sprintf(`vm-definition vm=%q digest-of=canonical-json`, vm)},
		{"console=ttyS0", fmt.Sprintf(`vm-cmdline vm=%q cmdline="console=ttyS0"`, vm)},
		{kernel, fmt.Sprintf(`vm-kernel vm=%q size=6 file="/img/vmlinuz"`, vm)},
		{initrd, fmt.Sprintf(`vm-initrd vm=%q size=6 file="/img/initrd.img"`, vm)},
	} {
		if err := h.m.Extend(attest.PCRLaunch, digest(e.d), e.data); err != nil {
			h.t.Fatal(err)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range h.report.VMs {
		if h.report.VMs[i].Name == vm {
			h.report.VMs[i].Running = true
			return
		}
	}
	h.report.VMs = append(h.report.VMs, attest.VMReport{Name: vm, Running: true})
}

func (h *testHost) events() []eventlog.Event {
	h.t.Helper()
	raw, err := h.m.EventLog()
	if err != nil {
		h.t.Fatal(err)
	}
	ev, err := eventlog.Parse(raw)
	if err != nil {
		h.t.Fatal(err)
	}
	return ev
}

// The HostClient side.

func (h *testHost) Keys(context.Context) (attest.Keys, error) { return h.att.Keys() }

func (h *testHost) Activate(_ context.Context, ch attest.Challenge) ([]byte, error) {
	return h.att.Activate(ch)
}

func (h *testHost) Quote(_ context.Context, nonce []byte) (attest.Evidence, error) {
	h.mu.Lock()
	rep, down, tamper := h.report, h.down, h.tamper
	h.mu.Unlock()
	if down {
		return attest.Evidence{}, errors.New("daemon unreachable: connection refused")
	}
	rep.Time = time.Now().UTC()
	repJSON, _ := json.Marshal(rep)
	ev := attest.Evidence{Report: repJSON, PCRs: map[int][]byte{}}
	err := h.m.Snapshot(func(log []byte) error {
		q, sig, vals, err := h.att.Quote(attest.QuoteData(nonce, repJSON), attest.QuotedPCRs)
		if err != nil {
			return err
		}
		ev.Quote, ev.Signature, ev.EventLog = q, sig, log
		for i, v := range vals {
			ev.PCRs[i] = v[:]
		}
		return nil
	})
	if err == nil && tamper != nil {
		tamper(&ev)
	}
	return ev, err
}

func (h *testHost) PushVerdict(_ context.Context, v attest.Verdict) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.down {
		return errors.New("daemon unreachable")
	}
	h.verdicts = append(h.verdicts, v)
	return nil
}

func (h *testHost) lastPushed() *attest.Verdict {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.verdicts) == 0 {
		return nil
	}
	v := h.verdicts[len(h.verdicts)-1]
	return &v
}

// goldenPolicy is the policy a reference host with these VMs' images
// passes: its host events, and images "good" (kernel k1, initrd i1).
func goldenPolicy(t testing.TB, h *testHost, version int) []byte {
	t.Helper()
	p, err := policy.FromHostEvents(version, h.events())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AddImage("good", hexd("k1"), hexd("i1"), ""); err != nil {
		t.Fatal(err)
	}
	p.VMDefault = &policy.DefaultRule{Images: []string{"*"}}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	doc, err := policy.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func openService(t *testing.T, hosts map[string]*testHost, hooks ...Webhook) *Service {
	t.Helper()
	dial := func(h Host) (HostClient, error) {
		th, ok := hosts[h.URL]
		if !ok {
			return nil, fmt.Errorf("no test host at %s", h.URL)
		}
		return th, nil
	}
	// An interval long enough that the tests drive polling themselves.
	s, err := Open(t.Context(), Config{Dir: t.TempDir(), Interval: time.Hour, Dial: dial, Webhooks: hooks})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func reasonsOf(v attest.Verdict) string {
	var b strings.Builder
	for _, r := range v.Reasons {
		fmt.Fprintf(&b, "%s: %s (found %s, expected %v)\n", r.Component, r.Message, r.Found, r.Expected)
	}
	for _, vv := range v.VMs {
		for _, r := range vv.Reasons {
			fmt.Fprintf(&b, "vm %s %s: %s (found %s)\n", vv.Name, r.Component, r.Message, r.Found)
		}
	}
	return b.String()
}

func vmStatus(v attest.Verdict, name string) attest.Status {
	for _, vv := range v.VMs {
		if vv.Name == name {
			return vv.Status
		}
	}
	return ""
}

// TestVerifierEndToEnd: registration binds the AK to the EK; a clean host
// and its VMs are trusted; a VM booted with another initrd fails by name;
// a changed QEMU binary makes the host untrusted; every change is stored,
// pushed to the host, sent to the webhook and audited; an unreachable
// host is unknown, never trusted.
func TestVerifierEndToEnd(t *testing.T) {
	h := newTestHost(t)
	var hookMu sync.Mutex
	var hookBodies []hookEvent
	secret := []byte("hook-secret")
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("X-Bulwark-Signature") != Sign(secret, body) {
			t.Errorf("webhook signature %q does not match the body", r.Header.Get("X-Bulwark-Signature"))
		}
		var ev hookEvent
		json.Unmarshal(body, &ev)
		hookMu.Lock()
		hookBodies = append(hookBodies, ev)
		hookMu.Unlock()
	}))
	defer hook.Close()
	s := openService(t, map[string]*testHost{"test:h1": h}, Webhook{URL: hook.URL, Secret: secret})

	h.launch("web", "k1", "i1")
	h.launch("db", "k1", "i1")
	if _, err := s.AddHost(t.Context(), Registration{Name: "h1", URL: "test:h1"}, "tester"); err != nil {
		t.Fatal(err)
	}
	// No policy yet: unknown.
	v, _ := s.PollNow(t.Context(), "h1")
	if v.Status != attest.Unknown {
		t.Fatalf("without a policy: %s\n%s", v.Status, reasonsOf(v))
	}
	if _, err := s.SetPolicy(t.Context(), goldenPolicy(t, h, 1), "tester"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetPolicy(t.Context(), goldenPolicy(t, h, 1), "tester"); !errors.Is(err, ErrStaleVersion) {
		t.Fatalf("same version again: %v", err)
	}
	if _, err := s.SetPolicy(t.Context(), []byte(`{"version": 2, "host": {"qemu-binary": ["xyz"]}}`), "tester"); err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "host.") {
		t.Fatalf("bad policy: %v", err)
	}
	v, _ = s.PollNow(t.Context(), "h1")
	if v.Status != attest.Trusted || vmStatus(v, "web") != attest.Trusted || vmStatus(v, "db") != attest.Trusted {
		t.Fatalf("clean host: %s\n%s", v.Status, reasonsOf(v))
	}
	if p := h.lastPushed(); p == nil || p.Status != attest.Trusted {
		t.Fatalf("pushed to the host: %+v", p)
	}

	// db restarts with another initrd: db fails naming the initrd, the
	// host and web stay trusted.
	h.launch("db", "k1", "i1-evil")
	v, _ = s.PollNow(t.Context(), "h1")
	if v.Status != attest.Trusted || vmStatus(v, "web") != attest.Trusted || vmStatus(v, "db") != attest.Untrusted {
		t.Fatalf("replaced initrd: host %s web %s db %s\n%s", v.Status, vmStatus(v, "web"), vmStatus(v, "db"), reasonsOf(v))
	}
	if !strings.Contains(reasonsOf(v), "vm db vm-initrd") || !strings.Contains(reasonsOf(v), hexd("i1-evil")) {
		t.Fatalf("the reason must name the initrd and its digest:\n%s", reasonsOf(v))
	}
	h.launch("db", "k1", "i1")

	// The daemon restarts on a patched QEMU binary: host untrusted.
	h.measureHost("qemu-v1-patched")
	v, _ = s.PollNow(t.Context(), "h1")
	if v.Status != attest.Untrusted || !strings.Contains(reasonsOf(v), "qemu-binary") || !strings.Contains(reasonsOf(v), hexd("qemu-v1-patched")) {
		t.Fatalf("patched QEMU: %s\n%s", v.Status, reasonsOf(v))
	}
	if p := h.lastPushed(); p == nil || p.Status != attest.Untrusted {
		t.Fatalf("untrusted verdict not pushed: %+v", p)
	}

	// Unreachable: unknown, never trusted.
	h.mu.Lock()
	h.down = true
	h.mu.Unlock()
	v, _ = s.PollNow(t.Context(), "h1")
	if v.Status != attest.Unknown || !strings.Contains(reasonsOf(v), "reachability") {
		t.Fatalf("unreachable: %s\n%s", v.Status, reasonsOf(v))
	}

	hist, err := s.History(t.Context(), "h1", 50)
	if err != nil {
		t.Fatal(err)
	}
	var seq []string
	for i := len(hist) - 1; i >= 0; i-- {
		seq = append(seq, string(hist[i].Status))
	}
	// unknown (no policy), trusted, trusted with db failing, untrusted,
	// unknown.
	if got := strings.Join(seq, " "); got != "unknown trusted trusted untrusted unknown" {
		t.Errorf("stored changes: %s", got)
	}
	time.Sleep(300 * time.Millisecond)
	hookMu.Lock()
	n := len(hookBodies)
	hookMu.Unlock()
	if n < 5 {
		t.Errorf("webhook saw %d changes, want at least 5", n)
	}
	s.Close()
	raw, err := os.ReadFile(filepath.Join(s.cfg.Dir, "verifier.db"))
	if err != nil || len(raw) == 0 {
		t.Fatalf("store: %v", err)
	}
}

// TestRegistrationRefusesSwappedAK: an AK from another TPM presented with
// this TPM's EK fails the credential challenge; nothing is registered.
func TestRegistrationRefusesSwappedAK(t *testing.T) {
	a, b := newTestHost(t), newTestHost(t)
	ka, err := a.att.Keys()
	if err != nil {
		t.Fatal(err)
	}
	kb, err := b.att.Keys()
	if err != nil {
		t.Fatal(err)
	}
	swapped := &swappedKeys{testHost: a, keys: attest.Keys{TPM: ka.TPM, EKPublic: ka.EKPublic, AK: kb.AK}}
	s := openService(t, nil)
	s.cfg.Dial = func(Host) (HostClient, error) { return swapped, nil }
	_, err = s.AddHost(t.Context(), Registration{Name: "h1", URL: "test:x"}, "tester")
	if err == nil {
		t.Fatal("a swapped AK was registered")
	}
	t.Logf("refused as expected: %v", err)
	if len(s.Status()) != 0 {
		t.Fatal("a host was registered")
	}
}

type swappedKeys struct {
	*testHost
	keys attest.Keys
}

func (s *swappedKeys) Keys(context.Context) (attest.Keys, error) { return s.keys, nil }

// TestCheckRejects: each kind of bad evidence is rejected with a precise
// reason.
func TestCheckRejects(t *testing.T) {
	h := newTestHost(t)
	h.launch("web", "k1", "i1")
	pol, err := policy.Parse(goldenPolicy(t, h, 1))
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := h.att.Keys()
	host := Host{Name: "h1", Keys: keys}
	nonce := func(b byte) []byte { n := make([]byte, attest.NonceSize); n[0] = b; return n }
	ev, err := h.Quote(t.Context(), nonce(1))
	if err != nil {
		t.Fatal(err)
	}
	if v := Check(host, pol, nonce(1), ev, time.Now()); v.Status != attest.Trusted {
		t.Fatalf("fresh evidence: %s\n%s", v.Status, reasonsOf(v))
	}
	clone := func() attest.Evidence {
		c := ev
		c.EventLog = append([]byte(nil), ev.EventLog...)
		c.Report = append([]byte(nil), ev.Report...)
		return c
	}
	cases := []struct {
		name      string
		ev        attest.Evidence
		nonce     []byte
		component string
		msg       string
	}{
		{"replayed quote", clone(), nonce(2), "quote", "nonce"},
		{"edited event digest", func() attest.Evidence {
			c := clone()
			events, _ := eventlog.Parse(c.EventLog)
			events[len(events)-1].Digest[0] ^= 1
			c.EventLog, _ = eventlog.Marshal(events)
			return c
		}(), nonce(1), "event-log", "replay"},
		{"truncated log", func() attest.Evidence { c := clone(); c.EventLog = c.EventLog[:len(c.EventLog)-7]; return c }(), nonce(1), "event-log", ""},
		{"report edited after quoting", func() attest.Evidence {
			c := clone()
			c.Report = []byte(strings.Replace(string(c.Report), `"running":true`, `"running":false`, 1))
			return c
		}(), nonce(1), "quote", ""},
		{"garbage quote", func() attest.Evidence { c := clone(); c.Quote = []byte{1, 2, 3}; return c }(), nonce(1), "quote", ""},
	}
	for _, c := range cases {
		v := Check(host, pol, c.nonce, c.ev, time.Now())
		if v.Status != attest.Untrusted || len(v.Reasons) == 0 || v.Reasons[0].Component != c.component ||
			!strings.Contains(strings.ToLower(v.Reasons[0].Message), c.msg) {
			t.Errorf("%s: %s\n%s", c.name, v.Status, reasonsOf(v))
		} else {
			t.Logf("%s: %s: %s", c.name, v.Reasons[0].Component, v.Reasons[0].Message)
		}
	}
	// A quote from another TPM's AK (a swapped AK after registration).
	other := newTestHost(t)
	ok, _ := other.att.Keys()
	if v := Check(Host{Name: "h1", Keys: ok}, pol, nonce(1), clone(), time.Now()); v.Status != attest.Untrusted || v.Reasons[0].Component != "quote" {
		t.Errorf("another AK: %s\n%s", v.Status, reasonsOf(v))
	}
}

// TestSwtpmGone: a host whose TPM died answers with an error the verifier
// reports as unknown with the reason.
func TestSwtpmGone(t *testing.T) {
	h := newTestHost(t)
	s := openService(t, map[string]*testHost{"test:h1": h})
	if _, err := s.AddHost(t.Context(), Registration{Name: "h1", URL: "test:h1"}, "tester"); err != nil {
		t.Fatal(err)
	}
	h.sw.Stop()
	v, _ := s.PollNow(t.Context(), "h1")
	if v.Status != attest.Unknown || !strings.Contains(reasonsOf(v), "reachability") {
		t.Fatalf("swtpm gone: %s\n%s", v.Status, reasonsOf(v))
	}
	t.Logf("swtpm gone: %s", reasonsOf(v))
}
