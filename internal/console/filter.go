package console

import (
	"bytes"
	"fmt"
	"time"
	"unicode/utf8"
)

// InputPolicy decides which keystrokes reach the guest. With Clipboard
// false (the default policy "deny") pasted text is refused: a terminal
// marks a paste with bracketed-paste sequences, and input that arrives in
// bigger lumps or faster than a person types is treated as pasted too.
type InputPolicy struct {
	Clipboard bool    // true: "allow", no checks beyond the message size
	MaxKeys   int     // keys allowed in one message
	Burst     int     // token bucket capacity, in keys
	Rate      float64 // keys per second the bucket refills
}

// Refusal is input the filter dropped, with the reason the user is told.
type Refusal struct{ Reason string }

func (r *Refusal) Error() string { return "input refused: " + r.Reason }

// pasteStart is what a terminal in bracketed-paste mode sends before
// pasted text (xterm's DECSET 2004).
var pasteStart = []byte("\x1b[200~")

// InputFilter applies an InputPolicy to one session's input. It is not
// safe for concurrent use; a session feeds it from one reader.
type InputFilter struct {
	pol    InputPolicy
	tokens float64
	last   time.Time
	tail   []byte // end of the previous message: a marker may straddle two
}

// NewInputFilter starts with a full bucket.
func NewInputFilter(p InputPolicy) *InputFilter {
	return &InputFilter{pol: p, tokens: float64(p.Burst)}
}

// Check admits p (returns nil) or refuses the whole message. A refused
// message costs no tokens, so typing resumes at once.
func (f *InputFilter) Check(p []byte, now time.Time) error {
	if f.pol.Clipboard {
		return nil
	}
	joined := append(f.tail, p...)
	if bytes.Contains(joined, pasteStart) {
		f.tail = f.tail[:0]
		return &Refusal{Reason: "bracketed paste (clipboard policy is deny)"}
	}
	f.keepTail(joined)
	keys := CountKeys(p)
	if keys > f.pol.MaxKeys {
		return &Refusal{Reason: fmt.Sprintf("%d keys in one message, more than a person types at once (limit %d; clipboard policy is deny)", keys, f.pol.MaxKeys)}
	}
	if !f.last.IsZero() && now.After(f.last) {
		f.tokens += now.Sub(f.last).Seconds() * f.pol.Rate
		if f.tokens > float64(f.pol.Burst) {
			f.tokens = float64(f.pol.Burst)
		}
	}
	f.last = now
	if float64(keys) > f.tokens {
		return &Refusal{Reason: fmt.Sprintf("input faster than typing (more than %d keys at once or %.0f keys/s; clipboard policy is deny)", f.pol.Burst, f.pol.Rate)}
	}
	f.tokens -= float64(keys)
	return nil
}

func (f *InputFilter) keepTail(b []byte) {
	n := len(pasteStart) - 1
	if len(b) < n {
		n = len(b)
	}
	f.tail = append(f.tail[:0], b[len(b)-n:]...)
}

// CountKeys counts what a person would have pressed to produce p: one per
// character, and one per escape sequence (an arrow or function key sends
// several bytes). Invalid UTF-8 counts one per byte.
func CountKeys(p []byte) int {
	keys := 0
	for i := 0; i < len(p); {
		keys++
		if p[i] == 0x1b {
			i += escLen(p[i:])
			continue
		}
		_, size := utf8.DecodeRune(p[i:])
		i += size
	}
	return keys
}

// escLen is the length of the escape sequence at the start of p (which
// begins with ESC): CSI (ESC [ params final) and SS3 (ESC O x) are whole
// keys; ESC followed by one character is Alt+character.
func escLen(p []byte) int {
	if len(p) < 2 {
		return 1
	}
	switch p[1] {
	case '[':
		for i := 2; i < len(p) && i < 32; i++ {
			if p[i] >= 0x40 && p[i] <= 0x7e {
				return i + 1
			}
		}
		return min(len(p), 32)
	case 'O':
		return min(len(p), 3)
	}
	_, size := utf8.DecodeRune(p[1:])
	return 1 + size
}
