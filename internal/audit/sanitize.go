package audit

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// truncMark ends a field that was cut to its limit.
const truncMark = "...[truncated]"

// sanitize returns s escaped as Normalize documents, cut so that the result,
// marker included, is at most max bytes. Work is bounded by max, not by
// len(s): it stops reading s once the output is full.
func sanitize(s string, max int) string {
	if len(s) <= max && isClean(s) {
		return s // the common case: no allocation
	}
	keep := max - len(truncMark) // output length a cut field keeps
	var b strings.Builder
	b.Grow(min(len(s)+8, max))
	cut := 0 // longest prefix of b, in whole units, that fits in keep
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b.WriteString(`\x`)
			writeHex(&b, uint32(s[i]), 2)
		case r == '\\':
			b.WriteString(`\\`)
		case r < 0x80 && needsEscape(r):
			b.WriteString(`\x`)
			writeHex(&b, uint32(r), 2)
		case needsEscape(r):
			b.WriteString(`\u`)
			writeHex(&b, uint32(r), 4) // every rune needsEscape matches is in the BMP
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
		if b.Len() > max {
			return b.String()[:cut] + truncMark
		}
		if b.Len() <= keep {
			cut = b.Len()
		}
	}
	return b.String()
}

// isClean reports whether s is valid UTF-8 with nothing to escape.
func isClean(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf {
			// Slow path for non-ASCII text; ASCII-only strings never get here.
			for _, r := range s[i:] {
				if r == utf8.RuneError || r == '\\' || needsEscape(r) {
					return false // invalid UTF-8 (or a literal U+FFFD, which takes the slow path harmlessly)
				}
			}
			return true
		} else if c == '\\' || c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// needsEscape reports whether r could mislead someone reading the log: a
// control character (C0, DEL, C1), a bidi control that reorders what a
// terminal shows, or a line or paragraph separator.
func needsEscape(r rune) bool {
	switch {
	case unicode.IsControl(r):
		return true
	case r == 0x200e || r == 0x200f: // LRM, RLM
		return true
	case r >= 0x202a && r <= 0x202e: // LRE, RLE, PDF, LRO, RLO
		return true
	case r >= 0x2066 && r <= 0x2069: // LRI, RLI, FSI, PDI
		return true
	case r == 0x2028 || r == 0x2029: // line and paragraph separators
		return true
	}
	return false
}

func writeHex(b *strings.Builder, v uint32, digits int) {
	const hexDigits = "0123456789abcdef"
	for shift := 4 * (digits - 1); shift >= 0; shift -= 4 {
		b.WriteByte(hexDigits[(v>>shift)&0xf])
	}
}
