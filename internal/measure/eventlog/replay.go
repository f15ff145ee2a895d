package eventlog

import "crypto/sha256"

// Replay returns the SHA-256 PCR values the events imply, keyed by PCR
// index; a PCR with no extending event is absent. Each PCR starts at 32 zero
// bytes and each event extends it: PCR = SHA256(PCR || Digest). EV_NO_ACTION
// events extend nothing.
func Replay(events []Event) map[uint32][sha256.Size]byte {
	pcrs := make(map[uint32][sha256.Size]byte)
	var buf [2 * sha256.Size]byte
	for _, e := range events {
		if e.Type == EventNoAction {
			continue
		}
		cur := pcrs[e.PCR] // zero value is the reset value
		copy(buf[:sha256.Size], cur[:])
		copy(buf[sha256.Size:], e.Digest[:])
		pcrs[e.PCR] = sha256.Sum256(buf[:])
	}
	return pcrs
}
