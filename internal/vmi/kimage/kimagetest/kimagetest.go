// Package kimagetest gives tests the installed Debian cloud kernel, the
// guest kernel Bulwark introspects, decompressed once per test binary.
//
// The tests that use it are not skipped when the kernel is missing: the
// introspection code is only meaningful against a real image, and CI
// installs linux-image-cloud-amd64 to provide one.
package kimagetest

import (
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"github.com/bulwark-project/bulwark/internal/vmi/kimage"
)

// Glob matches the guest kernels this package looks for.
const Glob = "/boot/vmlinuz-*-cloud-amd64"

var (
	once    sync.Once
	path    string
	vmlinux []byte
	err     error
)

// Path returns the installed cloud kernel (the last in name order when
// there are several), failing the test with
// instructions when there is none.
func Path(tb testing.TB) string {
	tb.Helper()
	matches, _ := filepath.Glob(Glob)
	if len(matches) == 0 {
		tb.Fatalf("no guest kernel matching %s: install one with `apt-get install linux-image-cloud-amd64` (these tests need a real Debian cloud kernel and are deliberately not skipped)", Glob)
	}
	sort.Strings(matches)
	return matches[len(matches)-1]
}

// Vmlinux returns the decompressed kernel from Path, extracted once per test
// binary. Callers must not modify it.
func Vmlinux(tb testing.TB) (string, []byte) {
	tb.Helper()
	p := Path(tb)
	once.Do(func() {
		path = p
		var f *os.File
		f, err = os.Open(p)
		if err != nil {
			return
		}
		defer f.Close()
		var st os.FileInfo
		if st, err = f.Stat(); err != nil {
			return
		}
		vmlinux, err = kimage.Extract(f, st.Size())
	})
	if err != nil {
		tb.Fatalf("extracting %s: %v", path, err)
	}
	return path, vmlinux
}
