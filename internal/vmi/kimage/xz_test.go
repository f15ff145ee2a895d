package kimage

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
)

// testdata/bcj.bin (not stored) is 16 KiB of x86-like bytes full of E8/E9
// rel32 instructions; the fixtures were made from it with
//
//	xz --format=xz --check=crc32 --x86 --lzma2=preset=6,dict=1MiB     (bcj-x86.xz, as scripts/xz_wrap.sh does)
//	xz -T2 --block-size=4096 ... same options                          (bcj-x86-blocks.xz: 4 blocks with sizes)
//	bzip2 -9                                                           (bcj.bin.bz2)
const bcjBinSHA256 = "32153a8e67fb528399a90da0218006985982d1cfbe57e029e7530504938ab787"

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFixturesDecode(t *testing.T) {
	for _, name := range []string{"bcj-x86.xz", "bcj-x86-blocks.xz", "bcj.bin.bz2"} {
		out, err := decompress(withSize(readFixture(t, name), 16384), MaxImageSize)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		sum := sha256.Sum256(out)
		if got := hex.EncodeToString(sum[:]); got != bcjBinSHA256 {
			t.Errorf("%s: sha256 %s, want %s", name, got, bcjBinSHA256)
		}
	}
}

// Without the BCJ step the output must differ: the fixture really exercises
// the filter rather than passing by accident.
func TestBCJChangesData(t *testing.T) {
	plain, err := decompress(withSize(readFixture(t, "bcj-x86.xz"), 16384), MaxImageSize)
	if err != nil {
		t.Fatal(err)
	}
	encoded := bcjX86Encode(plain)
	if bytes.Equal(encoded, plain) {
		t.Fatal("BCJ encoding changed nothing; the fixture has no call/jmp sequences")
	}
	bcjX86Decode(encoded, 0)
	if !bytes.Equal(encoded, plain) {
		t.Fatal("decode(encode(x)) != x")
	}
}

// bcjX86Encode is the reference encoder (xz's simple/x86.c with
// is_encoder=true), used to check the decoder round-trips.
func bcjX86Encode(in []byte) []byte {
	buf := append([]byte(nil), in...)
	maskToAllowed := [8]bool{true, true, true, false, true, false, false, false}
	maskToBitNum := [8]uint32{0, 1, 2, 2, 3, 3, 3, 3}
	test := func(b byte) bool { return b == 0 || b == 0xff }
	if len(buf) <= 4 {
		return buf
	}
	prevPos := -1
	var prevMask uint32
	for i := 0; i < len(buf)-4; i++ {
		if buf[i]&0xfe != 0xe8 {
			continue
		}
		d := i - prevPos
		if d > 3 {
			prevMask = 0
		} else {
			prevMask = (prevMask << (d - 1)) & 7
			if prevMask != 0 {
				b := buf[i+4-int(maskToBitNum[prevMask])]
				if !maskToAllowed[prevMask] || test(b) {
					prevPos = i
					prevMask = prevMask<<1 | 1
					continue
				}
			}
		}
		prevPos = i
		if !test(buf[i+4]) {
			prevMask = prevMask<<1 | 1
			continue
		}
		src := uint32(buf[i+1]) | uint32(buf[i+2])<<8 | uint32(buf[i+3])<<16 | uint32(buf[i+4])<<24
		var dest uint32
		for {
			dest = src + uint32(i) + 5
			if prevMask == 0 {
				break
			}
			j := maskToBitNum[prevMask] * 8
			if !test(byte(dest >> (24 - j))) {
				break
			}
			src = dest ^ (1<<(32-j) - 1)
		}
		dest &= 0x01ffffff
		dest |= 0 - (dest & 0x01000000)
		buf[i+1], buf[i+2], buf[i+3], buf[i+4] = byte(dest), byte(dest>>8), byte(dest>>16), byte(dest>>24)
		i += 4
	}
	return buf
}

func TestXZRejectsCorruption(t *testing.T) {
	good := readFixture(t, "bcj-x86.xz")
	// The index and footer (the last 32 bytes here) are not read: every
	// block carries its own CRC32, which is what protects the output.
	blocksEnd := len(good) - 32
	for _, pos := range []int{7, 9, 12, 13, 20, 100, blocksEnd - 1} {
		c := append([]byte(nil), good...)
		c[pos] ^= 0x55
		if _, err := unxz(c, MaxImageSize); err == nil {
			t.Errorf("corruption at %d accepted", pos)
		}
	}
	for cut := 0; cut < blocksEnd; cut += 97 {
		if _, err := unxz(good[:cut], MaxImageSize); err == nil {
			t.Errorf("truncation to %d bytes accepted", cut)
		}
	}
}

func TestXZCheckSizes(t *testing.T) {
	for id, want := range map[byte]int{0: 0, 1: 4, 3: 4, 4: 8, 6: 8, 7: 16, 10: 32, 13: 64, 15: 64, 16: -1} {
		if got := xzCheckSize(id); got != want {
			t.Errorf("xzCheckSize(%d) = %d, want %d", id, got, want)
		}
	}
}
