package api

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/measure"
	"github.com/bulwark-project/bulwark/internal/tpm"
	"github.com/bulwark-project/bulwark/internal/tpm/swtpmtest"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// TestAttestationRoutes serves a Measurer on a real swtpm: the event log
// comes back byte for byte, the PCRs agree with the replay, and a user
// without Attestation.Read is refused.
func TestAttestationRoutes(t *testing.T) {
	ts, _ := newAccessTestServer(t)
	if rec := ts.do("GET", "/api/v1/attestation/pcrs", nil); rec.Code != 503 {
		t.Fatalf("without a measurer: %d %s, want 503", rec.Code, rec.Body)
	}
	in := swtpmtest.Start(t)
	tp, err := tpm.Open(in.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	m, err := measure.Open(filepath.Join(t.TempDir(), "measure"), tp, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	l, err := m.BeginLaunch(vm.Spec{Name: "a", Cmdline: "quiet"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	k := filepath.Join(t.TempDir(), "k")
	os.WriteFile(k, []byte("kernel"), 0o600)
	f, _ := os.Open(k)
	defer f.Close()
	if err := l.Measure("kernel", f); err != nil {
		t.Fatal(err)
	}
	ts.srv.SetAttestation(m)

	rec := ts.do("GET", "/api/v1/attestation/eventlog", nil)
	want, _ := m.EventLog()
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/octet-stream" || !bytes.Equal(rec.Body.Bytes(), want) {
		t.Fatalf("eventlog: %d %q, %d bytes (want %d)", rec.Code, rec.Header().Get("Content-Type"), rec.Body.Len(), len(want))
	}
	rec = ts.do("GET", "/api/v1/attestation/pcrs", nil)
	var got PCRsResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &got); rec.Code != 200 || err != nil {
		t.Fatalf("pcrs: %d %s", rec.Code, rec.Body)
	}
	if !got.Agree || got.Kind != "swtpm" || got.HardwareRooted || got.PCRs["12"] != got.Replayed["12"] || got.PCRs["12"] == strings.Repeat("0", 64) {
		t.Fatalf("pcrs: %+v", got)
	}

	ts.do("POST", "/api/v1/users", body(`{"name":"alice"}`))
	ts.do("POST", "/api/v1/permissions", body(`{"user":"alice","role":"VMOperator","path":"/","propagate":true}`))
	tok := ts.token("alice")
	for _, p := range []string{"/api/v1/attestation/eventlog", "/api/v1/attestation/pcrs"} {
		if rec := ts.as(tok, "GET", p, nil); rec.Code != 403 || !strings.Contains(rec.Body.String(), "Attestation.Read") {
			t.Errorf("%s as VMOperator: %d %s, want 403 naming Attestation.Read", p, rec.Code, rec.Body)
		}
	}
	ts.do("POST", "/api/v1/users", body(`{"name":"sam"}`))
	ts.do("POST", "/api/v1/permissions", body(`{"user":"sam","role":"SecurityAuditor","path":"/","propagate":true}`))
	if rec := ts.as(ts.token("sam"), "GET", "/api/v1/attestation/pcrs", nil); rec.Code != 200 {
		t.Errorf("pcrs as SecurityAuditor: %d %s", rec.Code, rec.Body)
	}
}
