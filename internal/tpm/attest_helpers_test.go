package tpm_test

import (
	"crypto"
	"crypto/x509"
	"io"
	"log/slog"
	"testing"

	"github.com/bulwark-project/bulwark/internal/tpm"
	"github.com/bulwark-project/bulwark/internal/tpm/swtpmtest"
)

func parseEK(der []byte) (crypto.PublicKey, error) { return x509.ParsePKIXPublicKey(der) }

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

// openReadySwtpm is openSwtpm, retrying until swtpm listens (see
// swtpmtest.Instance.Open).
func openReadySwtpm(t *testing.T) (tpm.TPM, *swtpmtest.Instance) {
	t.Helper()
	sw := swtpmtest.Start(t)
	return sw.Open(t), sw
}
