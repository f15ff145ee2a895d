package kimage

import "encoding/binary"

// bcjX86Decode undoes the xz x86 BCJ filter in place. The filter rewrote the
// relative targets of E8 (call) and E9 (jmp) instructions into absolute ones
// so that repeated calls compress better; decoding subtracts the position
// again. This is a transcription of the reference decoder (xz-embedded's
// bcj_x86, also in the kernel's lib/xz/xz_dec_bcj.c), applied to a whole
// block at once, so the final four bytes are left as they are exactly like
// the streaming decoder does at the end of its input.
func bcjX86Decode(buf []byte, start uint32) {
	maskToAllowed := [8]bool{true, true, true, false, true, false, false, false}
	maskToBitNum := [8]uint32{0, 1, 2, 2, 3, 3, 3, 3}
	testMSByte := func(b byte) bool { return b == 0x00 || b == 0xff }

	if len(buf) <= 4 {
		return
	}
	size := len(buf) - 4
	prevPos := -1
	var prevMask uint32
	for i := 0; i < size; i++ {
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
				if !maskToAllowed[prevMask] || testMSByte(b) {
					prevPos = i
					prevMask = prevMask<<1 | 1
					continue
				}
			}
		}
		prevPos = i
		if !testMSByte(buf[i+4]) {
			prevMask = prevMask<<1 | 1
			continue
		}
		src := binary.LittleEndian.Uint32(buf[i+1:])
		var dest uint32
		for {
			dest = src - (start + uint32(i) + 5)
			if prevMask == 0 {
				break
			}
			j := maskToBitNum[prevMask] * 8
			if !testMSByte(byte(dest >> (24 - j))) {
				break
			}
			src = dest ^ (1<<(32-j) - 1)
		}
		dest &= 0x01ffffff
		dest |= 0 - (dest & 0x01000000)
		binary.LittleEndian.PutUint32(buf[i+1:], dest)
		i += 4
	}
}
