package kimage_test

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/vmi/kimage"
	"github.com/bulwark-project/bulwark/internal/vmi/kimage/kimagetest"
)

// TestDebianRelocs parses the real cloud kernel's table: Debian's kernel is
// relocatable, so all three lists must be there, with plausible counts,
// inside text/rodata/data.
func TestDebianRelocs(t *testing.T) {
	_, vmlinux := kimagetest.Vmlinux(t)
	start := time.Now()
	r, err := kimage.ParseRelocs(vmlinux)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("relocations: %d 32-bit, %d inverse 32-bit, %d 64-bit in %v", len(r.Abs32), len(r.Inv32), len(r.Abs64), time.Since(start))
	if len(r.Abs32) < 1000 || len(r.Inv32) < 1000 || len(r.Abs64) < 10000 || r.Count() > 2_000_000 {
		t.Errorf("implausible counts %d/%d/%d", len(r.Abs32), len(r.Inv32), len(r.Abs64))
	}
	segs, err := kimage.LoadSegments(vmlinux)
	if err != nil {
		t.Fatal(err)
	}
	// A 64-bit place holds a kernel address: pointer tables, not code.
	bad := 0
	for _, p := range r.Abs64 {
		off, _ := segs.Offset(p, 8)
		if v := binary.LittleEndian.Uint64(vmlinux[off:]); v < 0xffffffff80000000 {
			bad++
		}
	}
	if bad > len(r.Abs64)/100 {
		t.Errorf("%d of %d 64-bit places hold no kernel address", bad, len(r.Abs64))
	}
}
