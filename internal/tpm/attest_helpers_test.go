package tpm_test

import (
	"crypto"
	"crypto/x509"
	"io"
	"log/slog"
)

func parseEK(der []byte) (crypto.PublicKey, error) { return x509.ParsePKIXPublicKey(der) }

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
