package itest

import (
	"bytes"
	"crypto"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-attestation/attest"

	"github.com/bulwark-project/bulwark/internal/api"
	"github.com/bulwark-project/bulwark/internal/tpm/swtpmtest"
)

// TestMeasuredLaunchSwtpm runs the daemon on a real swtpm, starts a real
// VM, and checks that the TPM's PCR 11 and 12 equal what the event log
// replays to, and that go-attestation verifies the served log against the
// TPM's values.
func TestMeasuredLaunchSwtpm(t *testing.T) {
	sw := swtpmtest.Start(t)
	h := newHost(t, "--tpm", "swtpm:"+sw.Socket)
	var before api.PCRsResponse
	h.mustCLI(&before, "attest", "pcrs")
	if !before.Agree || before.Kind != "swtpm" || before.HardwareRooted || before.PCRs["11"] == strings.Repeat("0", 64) {
		t.Fatalf("after start: %+v", before)
	}
	h.createVM("m")
	h.mustCLI(nil, "vm", "start", "m")
	var after api.PCRsResponse
	h.mustCLI(&after, "attest", "pcrs")
	if !after.Agree || after.PCRs["12"] != after.Replayed["12"] || after.PCRs["12"] == strings.Repeat("0", 64) || after.PCRs["11"] != before.PCRs["11"] {
		t.Fatalf("after a VM start: %+v", after)
	}
	var events []struct {
		PCR  uint32
		Data string
	}
	h.mustCLI(&events, "attest", "log")
	var roles []string
	for _, e := range events {
		if e.PCR == 12 {
			roles = append(roles, strings.Fields(e.Data)[0])
		}
	}
	if strings.Join(roles, " ") != "vm-definition vm-cmdline vm-kernel vm-initrd" {
		t.Errorf("PCR 12 events %v", roles)
	}

	raw, err := h.c.Raw(t.Context(), "GET", "/api/v1/attestation/eventlog")
	if err != nil {
		t.Fatal(err)
	}
	el, err := attest.ParseEventLog(raw)
	if err != nil {
		t.Fatal(err)
	}
	var pcrs []attest.PCR
	for _, i := range []int{11, 12} {
		d, _ := hex.DecodeString(after.PCRs[strconv.Itoa(i)])
		pcrs = append(pcrs, attest.PCR{Index: i, Digest: bytes.Clone(d), DigestAlg: crypto.SHA256})
	}
	if _, err := el.Verify(pcrs); err != nil {
		t.Fatalf("go-attestation Verify against the TPM: %v", err)
	}
}
