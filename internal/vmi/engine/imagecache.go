package engine

import (
	"fmt"
	"os"
	"time"

	"github.com/bulwark-project/bulwark/internal/vmi/kimage"
)

// The decompressed kernel (vmlinux) is read by three derivations of a build
// at its first attach: the profile (when it is not in the profile cache),
// the expected text and rodata (check_image.go) and the gate tables
// (check_gates.go). Decompressing a distribution bzImage costs about as
// much as all the rest of a cold attach together, so it is done once per
// kernel file and shared.
//
// Nothing reads the vmlinux after the attach that needed it (the derived
// references are cached by build id), so its bytes (40-70 MiB for a
// distribution kernel) are dropped when the request ends: a monitor
// watching VMs of several builds does not keep their images in memory. The
// entry itself (and a failure) stays, bounded, so an image that cannot be
// decompressed is not retried on every request.

// maxImageEntries bounds the remembered kernel files.
const maxImageEntries = 4

// imageCache is the engine's decompressed kernels, by file identity (see
// fileKey). It is guarded by Engine.mu.
type imageCache struct {
	m     map[string]*vmlinuxEntry
	order []string // keys, oldest first, for eviction
}

type vmlinuxEntry struct {
	// done is closed when a decompression started by prefetchLocked ends;
	// nil when none is in flight. The fields below belong to that
	// goroutine until then.
	done    chan struct{}
	vmlinux []byte // nil once released, or on failure
	err     error
	// extractions counts the decompressions of this file: more than one
	// means the bytes were released and needed again.
	extractions int
	millis      float64 // cost of the last decompression
}

// fileKey identifies a kernel image file: device, inode, size and
// modification time, so a replaced file is not taken for the cached one.
func fileKey(kern *os.File) (string, error) {
	fi, err := kern.Stat()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%v-%d-%d", fileID(fi), fi.Size(), fi.ModTime().UnixNano()), nil
}

// vmlinuxLocked returns the decompressed kernel in kern, decompressing it
// at most once per request however many derivations ask (waiting for a
// prefetch in flight). The caller must not modify the bytes.
func (e *Engine) vmlinuxLocked(kern *os.File) ([]byte, error) {
	ent, err := e.entryLocked(kern)
	if err != nil {
		return nil, err
	}
	ent.wait()
	if ent.vmlinux == nil && ent.err == nil {
		ent.extract(kern)
	}
	return ent.vmlinux, ent.err
}

// prefetchLocked starts decompressing kern in the background when this
// process has not derived the build's expected text and gate tables yet,
// so the decompression overlaps the rest of a first attach (the baseline
// hashes of text and rodata) on a host with a spare core. It is called once
// the guest kernel is known to be up, so the polls of a booting guest do not
// decompress the image each time. The
// request's own vmlinuxLocked calls wait for it, and releaseImagesLocked
// before the request's descriptors are closed.
func (e *Engine) prefetchLocked(kern *os.File) {
	key, err := fileKey(kern)
	if err != nil {
		return
	}
	if p := e.profiles[key]; p != nil && derivedImage(p.BuildID) {
		return
	}
	ent, err := e.entryLocked(kern)
	if err != nil || ent.done != nil || ent.vmlinux != nil || ent.err != nil {
		return
	}
	ent.done = make(chan struct{})
	go func() {
		defer close(ent.done)
		ent.extract(kern)
	}()
}

// derivedImage reports whether both image references of a build are
// cached.
func derivedImage(buildID string) bool {
	imageRefs.mu.Lock()
	_, img := imageRefs.m[buildID]
	imageRefs.mu.Unlock()
	gateRefs.mu.Lock()
	_, gates := gateRefs.m[buildID]
	gateRefs.mu.Unlock()
	return img && gates
}

// entryLocked finds or adds kern's entry, evicting the oldest beyond
// maxImageEntries.
func (e *Engine) entryLocked(kern *os.File) (*vmlinuxEntry, error) {
	key, err := fileKey(kern)
	if err != nil {
		return nil, err
	}
	c := &e.images
	if c.m == nil {
		c.m = map[string]*vmlinuxEntry{}
	}
	if ent := c.m[key]; ent != nil {
		return ent, nil
	}
	for len(c.order) >= maxImageEntries {
		c.m[c.order[0]].wait()
		delete(c.m, c.order[0])
		c.order = c.order[1:]
	}
	ent := &vmlinuxEntry{}
	c.m[key] = ent
	c.order = append(c.order, key)
	return ent, nil
}

// wait waits for a prefetch in flight.
func (ent *vmlinuxEntry) wait() {
	if ent.done != nil {
		<-ent.done
		ent.done = nil
	}
}

func (ent *vmlinuxEntry) extract(kern *os.File) {
	start := time.Now()
	fi, err := kern.Stat()
	if err == nil {
		ent.vmlinux, err = kimage.Extract(kern, fi.Size())
	}
	if err != nil {
		ent.vmlinux, ent.err = nil, fmt.Errorf("decompressing the kernel image: %w", err)
	}
	ent.extractions++
	ent.millis = float64(time.Since(start).Microseconds()) / 1000
}

// releaseImagesLocked drops the decompressed bytes at the end of a request
// (failures are kept), once no prefetch is in flight: the request's
// descriptors are closed after it.
func (e *Engine) releaseImagesLocked() {
	for _, ent := range e.images.m {
		ent.wait()
		ent.vmlinux = nil
	}
}

// extractionsLocked is how many times kern's file has been decompressed
// (for tests and benchmarks).
func (e *Engine) extractionsLocked(kern *os.File) int {
	key, err := fileKey(kern)
	if err != nil {
		return 0
	}
	if ent := e.images.m[key]; ent != nil {
		ent.wait()
		return ent.extractions
	}
	return 0
}

// DropDerivedImages forgets every build's expected text and gate tables,
// which are shared by all engines of the process, so the next attach
// derives them again as a freshly started monitor would. It is for
// benchmarks and tests that measure a cold attach.
func DropDerivedImages() {
	imageRefs.mu.Lock()
	clear(imageRefs.m)
	imageRefs.mu.Unlock()
	gateRefs.mu.Lock()
	clear(gateRefs.m)
	gateRefs.mu.Unlock()
}
