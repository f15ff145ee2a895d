package tpm

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// maxAKBlob bounds the AK state file. go-attestation's serialised RSA-2048
// AK (public, wrapped private, creation data, attestation, signature) is
// about 1.5 KiB.
const maxAKBlob = 16 << 10

// readAKBlob reads the AK state file. A missing file is (nil, nil): no AK
// was made yet. The file must be a regular file, not a symlink, and at most
// maxAKBlob bytes.
func readAKBlob(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tpm: read AK state: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("tpm: read AK state: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("tpm: AK state %s is not a regular file (%v)", path, st.Mode().Type())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxAKBlob+1))
	if err != nil {
		return nil, fmt.Errorf("tpm: read AK state %s: %w", path, err)
	}
	if len(b) > maxAKBlob {
		return nil, fmt.Errorf("tpm: AK state %s is over %d bytes", path, maxAKBlob)
	}
	return b, nil
}

// writeAKBlob replaces the AK state file atomically: a 0600 temporary file
// in the same directory, synced, renamed over path, and the directory
// synced, so that a crash leaves the old blob or the new one, never half.
func writeAKBlob(path string, blob []byte) (err error) {
	dir := filepath.Dir(path)
	tmp := path + ".tmp"
	// A leftover from a crash in the middle of a previous write.
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("tpm: write AK state: %w", err)
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("tpm: write AK state: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(blob); err != nil {
		return fmt.Errorf("tpm: write AK state %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("tpm: sync AK state %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("tpm: close AK state %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("tpm: write AK state: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("tpm: sync AK state directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("tpm: sync AK state directory %s: %w", dir, err)
	}
	return nil
}
