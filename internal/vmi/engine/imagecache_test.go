package engine

import (
	"os"
	"testing"

	"github.com/bulwark-project/bulwark/internal/vmi/kimage/kimagetest"
)

// coldDerive does what a first attach of a new build does with the image
// file: the profile (empty profile cache), the expected text and the gate
// tables, then the end of the request.
func coldDerive(tb testing.TB, e *Engine, kern *os.File) {
	tb.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, err := e.profileLocked(kern); err != nil {
		tb.Fatal(err)
	}
	if _, err := e.deriveImageLocked(kern); err != nil {
		tb.Fatal(err)
	}
	if _, err := e.deriveGatesLocked(kern); err != nil {
		tb.Fatal(err)
	}
	e.releaseImagesLocked()
}

// TestOneExtraction: the three derivations of a cold attach share one
// decompression, and the bytes are not kept after the request.
func TestOneExtraction(t *testing.T) {
	kern, err := os.Open(kimagetest.Path(t))
	if err != nil {
		t.Fatal(err)
	}
	defer kern.Close()
	e := New(t.TempDir())
	coldDerive(t, e, kern)
	if n := e.extractionsLocked(kern); n != 1 {
		t.Fatalf("%d decompressions of one image for profile, text and gates, want 1", n)
	}
	for _, ent := range e.images.m {
		if ent.vmlinux != nil {
			t.Fatal("the decompressed kernel is kept after the request")
		}
	}

	// With a prefetch in flight (as attachLocked starts one), the
	// derivations wait for it instead of decompressing again. The
	// image references are dropped so the prefetch is not skipped.
	DropDerivedImages()
	e = New(t.TempDir())
	e.mu.Lock()
	e.prefetchLocked(kern)
	e.mu.Unlock()
	coldDerive(t, e, kern)
	if n := e.extractionsLocked(kern); n != 1 {
		t.Fatalf("prefetch: %d decompressions, want 1", n)
	}
	// Once the build's references exist, an attach does not prefetch.
	e.mu.Lock()
	p, err := e.profileLocked(kern)
	if err != nil {
		t.Fatal(err)
	}
	imageRefs.mu.Lock()
	imageRefs.m[p.BuildID] = &imageRef{}
	imageRefs.mu.Unlock()
	gateRefs.mu.Lock()
	gateRefs.m[p.BuildID] = &gateRef{}
	gateRefs.mu.Unlock()
	defer DropDerivedImages()
	e.prefetchLocked(kern)
	inFlight := e.images.m[mustKey(t, kern)].done != nil
	e.mu.Unlock()
	if inFlight {
		t.Fatal("prefetch of a build whose references are derived")
	}
}

func mustKey(t *testing.T, f *os.File) string {
	k, err := fileKey(f)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestImageCacheBounded: at most maxImageEntries files are remembered, and
// a failure is remembered (not decompressed again on every request).
func TestImageCacheBounded(t *testing.T) {
	e := New(t.TempDir())
	dir := t.TempDir()
	var first *os.File
	for i := 0; i < maxImageEntries+2; i++ {
		f, err := os.CreateTemp(dir, "bad-*")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		f.WriteString("not a kernel")
		if first == nil {
			first = f
		}
		e.mu.Lock()
		if _, err := e.vmlinuxLocked(f); err == nil {
			t.Fatal("a text file decompressed")
		}
		if _, err := e.vmlinuxLocked(f); err == nil || e.extractionsLocked(f) != 1 {
			t.Fatalf("failure not remembered: %v, %d tries", err, e.extractionsLocked(f))
		}
		e.mu.Unlock()
	}
	if n := len(e.images.m); n != maxImageEntries || len(e.images.order) != n {
		t.Fatalf("%d entries (%d ordered), want %d", n, len(e.images.order), maxImageEntries)
	}
	if e.extractionsLocked(first) != 0 {
		t.Fatal("the oldest entry was not evicted")
	}
}

// BenchmarkColdDerive is the image work of a first attach of a build, with
// an empty profile cache: one decompression, the profile (kallsyms, BTF),
// the expected text and rodata, the gate tables.
func BenchmarkColdDerive(b *testing.B) {
	kern, err := os.Open(kimagetest.Path(b))
	if err != nil {
		b.Fatal(err)
	}
	defer kern.Close()
	for i := 0; i < b.N; i++ {
		coldDerive(b, New(b.TempDir()), kern)
	}
}
