package audit

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// KeyFile is the name of the checkpoint signing key in the log's directory.
const KeyFile = "audit.key"

// maxKeyFile bounds what LoadOrCreateKey reads; a PEM PKCS#8 Ed25519 key is
// 119 bytes.
const maxKeyFile = 4096

// LoadOrCreateKey returns the checkpoint signing key stored in dir/audit.key,
// generating it on first use. The file is a PEM "PRIVATE KEY" block (PKCS#8,
// as `openssl pkey` reads it), mode 0600 in a 0700 directory. A new key is
// written to a temporary file, synced and linked into place, so a crash
// never leaves a partial key and two processes racing both end up with the
// same one.
//
// It refuses a key file that is a symlink, not a regular file, or readable
// or writable by group or others: a key others could read can forge
// checkpoints.
func LoadOrCreateKey(dir string) (ed25519.PrivateKey, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit: key dir %s: %w", dir, err)
	}
	path := filepath.Join(dir, KeyFile)
	key, err := loadKey(path)
	if !errors.Is(err, os.ErrNotExist) {
		return key, err
	}
	return createKey(dir, path)
}

func loadKey(path string) (ed25519.PrivateKey, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("audit: open key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("audit: key %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("audit: key %s is not a regular file (%v)", path, fi.Mode())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("audit: key %s has mode %#o; it must not be accessible to group or others (chmod 600)", path, perm)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("audit: read key %s: %w", path, err)
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("audit: key %s is larger than %d bytes", path, maxKeyFile)
	}
	return parseKey(path, data)
}

func parseKey(path string, data []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("audit: key %s: no PEM PRIVATE KEY block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("audit: key %s: %w", path, err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("audit: key %s is a %T, want Ed25519", path, k)
	}
	return key, nil
}

func createKey(dir, path string) (ed25519.PrivateKey, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("audit: generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("audit: encode key: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".audit.key-*") // mode 0600
	if err != nil {
		return nil, fmt.Errorf("audit: create key: %w", err)
	}
	defer os.Remove(tmp.Name())
	err = pem.Encode(tmp, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("audit: write key %s: %w", tmp.Name(), err)
	}
	// Link, unlike rename, fails if the key appeared meanwhile: then the
	// other process's key wins and this one is thrown away.
	if err := os.Link(tmp.Name(), path); errors.Is(err, os.ErrExist) {
		return loadKey(path)
	} else if err != nil {
		return nil, fmt.Errorf("audit: install key %s: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	return key, nil
}

// syncDir makes a new directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("audit: sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("audit: sync %s: %w", dir, err)
	}
	return nil
}
