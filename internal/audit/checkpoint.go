package audit

import (
	"crypto/ed25519"
	"strconv"
	"time"
)

// Checkpoint is a signed statement that record Seq of the log had hash Hash
// at Time. A checkpoint pins everything up to Seq: the chain cannot be
// rewritten up to there, nor cut short of it, without the signing key.
type Checkpoint struct {
	Seq  uint64    `json:"seq"`
	Hash string    `json:"hash"`
	Time time.Time `json:"time"`
	Sig  []byte    `json:"sig"` // Ed25519 over Message(); base64 in JSON
}

// checkpointDomain starts every signed checkpoint message.
const checkpointDomain = "bulwark-audit-checkpoint"

// Message returns the bytes the signature covers:
// "bulwark-audit-checkpoint\n<seq>\n<hash>\n<time>", with seq in decimal
// and time in UTC as time.RFC3339Nano.
func (c Checkpoint) Message() []byte {
	b := make([]byte, 0, len(checkpointDomain)+1+20+1+len(c.Hash)+1+35)
	b = append(b, checkpointDomain...)
	b = append(b, '\n')
	b = strconv.AppendUint(b, c.Seq, 10)
	b = append(b, '\n')
	b = append(b, c.Hash...)
	b = append(b, '\n')
	return c.Time.UTC().AppendFormat(b, time.RFC3339Nano)
}

// SignCheckpoint returns a checkpoint for record seq with hash hash, made at
// t, signed with key.
func SignCheckpoint(key ed25519.PrivateKey, seq uint64, hash string, t time.Time) Checkpoint {
	c := Checkpoint{Seq: seq, Hash: hash, Time: t.UTC()}
	c.Sig = ed25519.Sign(key, c.Message())
	return c
}

// ValidSig reports whether c carries a valid signature by pub. It is false,
// not a panic, for a key or signature of the wrong length.
func (c Checkpoint) ValidSig(pub ed25519.PublicKey) bool {
	if len(pub) != ed25519.PublicKeySize || len(c.Sig) != ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(pub, c.Message(), c.Sig)
}
