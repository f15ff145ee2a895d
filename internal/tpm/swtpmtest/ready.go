package swtpmtest

import (
	"errors"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/tpm"
)

// Open opens this instance with tpm.Open and closes it when the test ends.
// It retries a refused connection for up to startTimeout: swtpm's socket
// file appears at bind(), before listen(), and its listen backlog is short
// (a connection Start made to probe it may still sit there), so the first
// dial can be refused with ECONNREFUSED or EAGAIN.
func (in *Instance) Open(tb testing.TB) tpm.TPM {
	tb.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		t, err := tpm.Open(in.Config())
		if err == nil {
			tb.Cleanup(func() { t.Close() })
			return t
		}
		if !errors.Is(err, tpm.ErrNoTPM) || time.Now().After(deadline) {
			tb.Fatalf("open %v: %v\n%s", in, err, in.stderr)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
