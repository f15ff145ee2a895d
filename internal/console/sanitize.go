package console

import "unicode/utf8"

// Sanitizer neutralises guest output that attacks the operator's terminal
// rather than displaying text. The guest is the attacker: it can write any
// bytes to its serial line. Dropped, whole:
//
//   - string sequences — OSC (ESC ]), DCS (ESC P), SOS (ESC X), PM (ESC ^)
//     and APC (ESC _): OSC 52 writes the operator's clipboard, other OSCs set
//     titles that some terminals report back as input, DCS requests
//     (DECRQSS) answer into the input stream;
//   - CSI ... t (window operations, including title reports), CSI ... i
//     (media copy) and CSI ? 2004 h/l (bracketed-paste mode belongs to the
//     client: a guest switching it off would disguise pastes as typing);
//   - C1 controls encoded in UTF-8 (U+0080..U+009F), which terminals such as
//     xterm.js execute as 8-bit CSI/OSC/DCS.
//
// Invalid UTF-8 becomes U+FFFD, so the output is always valid UTF-8 (the
// asciicast format needs it). Everything else, colours and cursor movement
// included, passes. State carries across calls, so a sequence split between
// two reads is handled like one in a single read; nothing is buffered
// beyond a short CSI (maxCSI) and an incomplete UTF-8 character.
type Sanitizer struct {
	state   int
	seq     []byte // pending CSI, ESC [ included
	utf     []byte // incomplete UTF-8 character from the previous call
	strLen  int    // bytes swallowed in the current string sequence
	Dropped int    // sequences and characters neutralised so far
}

const (
	stGround = iota
	stEsc
	stCSI
	stStr    // inside a string sequence, swallowing
	stStrEsc // ESC seen inside a string sequence: ST (ESC \) may follow
)

const (
	maxCSI = 64   // longer CSI sequences are not real and are dropped
	maxStr = 4096 // an unterminated string sequence ends here
)

var replacement = []byte("\uFFFD")

// Write appends the sanitised form of p to dst and returns it.
func (s *Sanitizer) Write(dst, p []byte) []byte {
	buf := p
	if len(s.utf) > 0 {
		buf = append(s.utf, p...)
		s.utf = s.utf[:0]
	}
	for i := 0; i < len(buf); {
		c := buf[i]
		switch s.state {
		case stGround:
			// Fast path: a run of ASCII without ESC passes unchanged.
			j := i
			for j < len(buf) && buf[j] < 0x80 && buf[j] != 0x1b {
				j++
			}
			if j > i {
				dst = append(dst, buf[i:j]...)
				i = j
				continue
			}
			switch {
			case c == 0x1b:
				s.state = stEsc
				i++
			case c < 0x80:
				dst = append(dst, c)
				i++
			default:
				if !utf8.FullRune(buf[i:]) {
					s.utf = append(s.utf[:0], buf[i:]...) // at most 3 bytes
					return dst
				}
				r, size := utf8.DecodeRune(buf[i:])
				switch {
				case r == utf8.RuneError && size == 1:
					dst = append(dst, replacement...)
				case r >= 0x80 && r <= 0x9f:
					s.Dropped++
				default:
					dst = append(dst, buf[i:i+size]...)
				}
				i += size
			}
		case stEsc:
			switch c {
			case '[':
				s.seq = append(s.seq[:0], 0x1b, '[')
				s.state = stCSI
				i++
			case ']', 'P', 'X', '^', '_':
				s.Dropped++
				s.strLen = 0
				s.state = stStr
				i++
			case 0x1b:
				i++ // ESC ESC: the first is dropped
			default:
				s.state = stGround
				if c >= 0x20 && c < 0x7f {
					dst = append(dst, 0x1b, c)
					i++
				} // else: a lone ESC before a control; reprocess c
			}
		case stCSI:
			switch {
			case c >= 0x40 && c <= 0x7e: // final byte
				s.seq = append(s.seq, c)
				if csiAllowed(s.seq) {
					dst = append(dst, s.seq...)
				} else {
					s.Dropped++
				}
				s.state = stGround
				i++
			case c >= 0x20 && c < 0x40 && len(s.seq) < maxCSI:
				s.seq = append(s.seq, c)
				i++
			default: // a control, or too long: the sequence is malformed
				s.Dropped++
				s.state = stGround
				if c >= 0x20 && c < 0x80 {
					i++ // part of the overlong sequence
				}
			}
		case stStr:
			i++
			s.strLen++
			switch {
			case c == 0x07 || c == 0x18 || c == 0x1a:
				s.state = stGround
			case c == 0x1b:
				s.state = stStrEsc
			case s.strLen >= maxStr:
				s.state = stGround
			}
		case stStrEsc:
			if c == '\\' {
				s.state = stGround
				i++
			} else {
				s.state = stEsc // ESC began a new sequence
			}
		}
	}
	return dst
}

// csiAllowed reports whether a complete CSI sequence may reach the
// operator's terminal.
func csiAllowed(seq []byte) bool {
	switch seq[len(seq)-1] {
	case 't', 'i':
		return false
	case 'h', 'l':
		return string(seq[2:len(seq)-1]) != "?2004"
	}
	return true
}
