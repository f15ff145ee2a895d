package measure

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"

	"github.com/bulwark-project/bulwark/internal/attest"
)

// PCRRuntime holds runtime integrity findings: code of the running daemon
// or of a QEMU that no longer equals its file on disk.
const PCRRuntime = attest.PCRRuntime

// ErrNoMismatch is returned by RecordRuntimeMismatch for a clean check.
var ErrNoMismatch = errors.New("runtime check has no mismatch to record")

// RuntimeMismatchEvent is what RecordRuntimeMismatch extends PCR 13 with
// for rc: the event data, one line,
//
//	runtime-text-mismatch process=P [vm="NAME" ]pid=N binary="PATH" first_offset=0xHEX count=N
//
// (vm= only for a QEMU process), and the SHA-256 of a canonical
// description: that line, a newline, then one line per listed mismatch,
//
//	object="PATH" offset=0xHEX length=N symbol="S" expected=HEX found=HEX
//
// each ending in a newline. The digest thus covers the differing bytes the
// report lists, so a verifier can recompute it from the RuntimeCheck, and
// the same finding seen again has the same digest (callers record each
// digest once). ok is false when rc has no mismatch.
func RuntimeMismatchEvent(rc attest.RuntimeCheck) (digest [32]byte, data string, ok bool) {
	if len(rc.Mismatches) == 0 {
		return digest, "", false
	}
	var b strings.Builder
	fmt.Fprintf(&b, "runtime-text-mismatch process=%s ", rc.Process)
	if rc.VM != "" {
		fmt.Fprintf(&b, "vm=%s ", quote(rc.VM))
	}
	fmt.Fprintf(&b, "pid=%d binary=%s first_offset=%#x count=%d", rc.PID, quote(rc.Binary), rc.Mismatches[0].Offset, len(rc.Mismatches))
	data = b.String()
	b.WriteByte('\n')
	for _, m := range rc.Mismatches {
		fmt.Fprintf(&b, "object=%s offset=%#x length=%d symbol=%s expected=%s found=%s\n",
			quote(m.Object), m.Offset, m.Length, quote(m.Symbol), m.Expected, m.Found)
	}
	return sha256.Sum256([]byte(b.String())), data, true
}

// RecordRuntimeMismatch extends PCR 13 with rc's finding (see
// RuntimeMismatchEvent) and logs it. It records every call: deciding
// which findings are new is the caller's (the daemon's runtime checker
// keeps the digests it recorded), so that the log does not grow on every
// check of an unchanged finding.
func (m *Measurer) RecordRuntimeMismatch(rc attest.RuntimeCheck) error {
	d, data, ok := RuntimeMismatchEvent(rc)
	if !ok {
		return ErrNoMismatch
	}
	return m.Extend(PCRRuntime, d, data)
}
