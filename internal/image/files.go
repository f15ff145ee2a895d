package image

import (
	"bytes"
	"cmp"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// readStaticBusybox reads the busybox binary and rejects a dynamically linked
// one: the initramfs carries no libc or loader, so such a binary would fail at
// boot with a cryptic "not found" from the kernel instead of here.
func readStaticBusybox(p string) ([]byte, error) {
	data, err := readBounded(p, maxBusyboxSize)
	if err != nil {
		return nil, fmt.Errorf("image: busybox: %w", err)
	}
	if err := checkStaticELF(data); err != nil {
		return nil, fmt.Errorf("image: busybox %s: %w (install the busybox-static package)", p, err)
	}
	return data, nil
}

// checkStaticELF accepts an ELF executable without a PT_INTERP program
// header, which covers both classic static binaries and static-pie ones.
func checkStaticELF(data []byte) error {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("not an ELF executable: %w", err)
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("ELF type %v is not an executable", f.Type)
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		interp, _ := io.ReadAll(io.LimitReader(p.Open(), 256))
		return fmt.Errorf("dynamically linked (program interpreter %q), a static binary is required",
			strings.TrimRight(string(interp), "\x00"))
	}
	return nil
}

// readBounded reads a regular file of at most limit bytes.
func readBounded(p string, limit int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", p)
	}
	return readAllBounded(f, p, limit)
}

func readAllBounded(r io.Reader, name string, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, limit)
	}
	return data, nil
}

// writeAtomic writes dir/name (mode 0644) through a temporary file in the
// same directory and a rename, so the VMM never boots a half-written kernel
// or initrd left by an interrupted build.
func writeAtomic(dir, name string, fill func(io.Writer) error) (err error) {
	tmp, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			err = fmt.Errorf("image: writing %s: %w", filepath.Join(dir, name), err)
		}
	}()
	if err = fill(tmp); err != nil {
		return err
	}
	// CreateTemp uses 0600; set the final mode explicitly so it does not
	// depend on the caller's umask.
	if err = tmp.Chmod(0o644); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, name))
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// compareVersions orders kernel release strings the way "sort -V" does, so
// that 6.10 sorts after 6.9: digit runs compare numerically, everything else
// byte-wise.
func compareVersions(a, b string) int {
	x, y := a, b
	for x != "" && y != "" {
		cx, rx := versionChunk(x)
		cy, ry := versionChunk(y)
		if c := compareChunk(cx, cy); c != 0 {
			return c
		}
		x, y = rx, ry
	}
	if c := cmp.Compare(len(x), len(y)); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

// versionChunk splits off the leading run of digits or of non-digits.
func versionChunk(s string) (chunk, rest string) {
	digit := isDigit(s[0])
	i := 1
	for i < len(s) && isDigit(s[i]) == digit {
		i++
	}
	return s[:i], s[i:]
}

func compareChunk(a, b string) int {
	if !isDigit(a[0]) || !isDigit(b[0]) {
		return strings.Compare(a, b)
	}
	a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
	if c := cmp.Compare(len(a), len(b)); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
