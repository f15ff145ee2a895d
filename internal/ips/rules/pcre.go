package rules

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
)

// maxPCREBytes bounds one regular expression's source.
const maxPCREBytes = 8 << 10

// maxPCREInsts bounds the size of a compiled expression. Go's regexp runs
// in time proportional to input length times program size, so a small rule
// text with large counted repeats ("\\w{1000}" three hundred times) would
// make every inspected byte expensive. The largest expression in ET Open
// compiles to about 4,100 instructions.
const maxPCREInsts = 10_000

// progSize estimates the instruction count of a parsed expression, as the
// compiler would expand it, without compiling it; saturates above the limit.
func progSize(re *syntax.Regexp) int {
	n := 1
	switch re.Op {
	case syntax.OpLiteral:
		n = len(re.Rune)
	case syntax.OpRepeat:
		sub := progSize(re.Sub[0])
		times := re.Max
		if times < re.Min+1 {
			times = re.Min + 1
		}
		n = sub * times
	default:
		for _, s := range re.Sub {
			n += progSize(s)
			if n > maxPCREInsts {
				break
			}
		}
	}
	return min(n, maxPCREInsts+1)
}

// maxRepeat is Go's regexp limit on a counted repetition.
const maxRepeat = 1000

// pcre parses pcre:"[!]/re/flags" and adds it to the active buffer, or to
// the buffer its buffer flag (U, H, P, ...) selects.
func (st *ruleState) pcre(v string) *Error {
	const kw = "pcre"
	v = strings.TrimSpace(v)
	p := &PCRE{}
	if strings.HasPrefix(v, "!") {
		p.Negated = true
		v = strings.TrimSpace(v[1:])
	}
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return errf(kw, "value must be a quoted string", "%q", truncate(v, 60))
	}
	src := v[1 : len(v)-1]
	if len(src) > maxPCREBytes {
		return errf(kw, "too long", "%d bytes, limit %d", len(src), maxPCREBytes)
	}
	p.Source = src
	end := strings.LastIndexByte(src, '/')
	if !strings.HasPrefix(src, "/") || end < 1 {
		return errf(kw, "want /regex/flags", "%q", truncate(src, 60))
	}
	body, flagStr := src[1:end], src[end+1:]
	var fl pcreFlags
	buf, hasBuf := Buffer(0), false
	for i := 0; i < len(flagStr); i++ {
		c := flagStr[i]
		switch c {
		case 'i':
			fl.caseless = true
		case 's':
			fl.dotall = true
		case 'm':
			fl.multiline = true
		case 'x':
			fl.extended = true
		case 'A':
			fl.anchored = true
		case 'E':
			fl.dollarEnd = true
		case 'G':
			fl.ungreedy = true
		case 'R':
			p.Relative = true
		case 'B':
			p.Rawbytes = true
		case 'O':
			// Override of PCRE's match limits: Go's regexp needs none.
		default:
			b, ok := pcreFlagBuffer(c)
			if !ok {
				return errf(kw, "unknown flag", "%q in %q", string(c), truncate(flagStr, 20))
			}
			if hasBuf && b != buf {
				return errf(kw, "two buffer flags", "%q", flagStr)
			}
			buf, hasBuf = b, true
		}
	}
	if hasBuf && p.Rawbytes {
		return errf(kw, "B with a buffer flag", "%q", flagStr)
	}
	expr, err := translatePCRE(body, fl)
	if err != nil {
		return err
	}
	if tree, perr := syntax.Parse(expr, syntax.Perl); perr == nil {
		if n := progSize(tree); n > maxPCREInsts {
			return unsupported(kw, "beyond RE2 size limits", fmt.Sprintf("about %d instructions, limit %d", n, maxPCREInsts))
		}
	}
	re, cerr := regexp.Compile(expr)
	if cerr != nil {
		var se *syntax.Error
		if errors.As(cerr, &se) && (se.Code == syntax.ErrInvalidRepeatSize || se.Code == syntax.ErrLarge || se.Code == syntax.ErrNestingDepth) {
			return unsupported(kw, "beyond RE2 size limits", se.Error())
		}
		return errf(kw, "does not compile", "%v", cerr)
	}
	p.Expr, p.Re = expr, re
	if hasBuf {
		if st.cur != BufPayload && st.cur != buf {
			return errf(kw, "buffer flag conflicts with sticky buffer", "flag selects %s, sticky buffer is %s", buf, st.cur)
		}
		saved := st.cur
		st.cur = buf
		e := st.add(kw, Match{Kind: MatchPCRE, PCRE: p})
		st.cur = saved
		return e
	}
	return st.add(kw, Match{Kind: MatchPCRE, PCRE: p})
}

func pcreFlagBuffer(c byte) (Buffer, bool) {
	b, ok := pcreBufferFlags[c]
	return b, ok
}

type pcreFlags struct {
	caseless, dotall, multiline, extended, anchored, dollarEnd, ungreedy bool
}

// translatePCRE rewrites a PCRE expression into Go's RE2 syntax.
//
// RE2 matches in linear time and so has no backreferences, lookaround,
// atomic groups, possessive quantifiers, recursion or conditionals: those
// are refused with the construct named. Other differences are translated:
//   - "$" without the m flag matches at the end or before a final newline
//     in PCRE; it becomes \n?\z (the newline, if any, is consumed, which
//     moves the match end by one byte for a following relative match).
//     With E it becomes \z; with m, Go's (?m)$ already agrees.
//   - \Z becomes \n?\z, \e becomes \x1b, \cX a control byte, \h and \v
//     their ASCII classes, \R an alternation of line breaks.
//   - the x flag is applied here (whitespace and # comments dropped),
//     (?#...) comments are dropped, A anchors with \A.
//
// Go matches UTF-8 text, not bytes: a byte above 0x7f in the pattern (raw,
// \xHH or octal) cannot be expressed and is refused. Input bytes that are
// not valid UTF-8 each match "." and negated classes, as one byte does in
// PCRE; valid multi-byte UTF-8 in the input counts as one character.
func translatePCRE(re string, fl pcreFlags) (string, *Error) {
	const kw = "pcre"
	var b strings.Builder
	inClass := false
	classStart := 0
	prevQuant := false // the last token was a quantifier
	for i := 0; i < len(re); i++ {
		c := re[i]
		if c >= 0x80 {
			return "", unsupported(kw, "byte above 0x7f", "Go regexp matches UTF-8, not bytes")
		}
		if fl.extended && !inClass {
			if c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' {
				continue
			}
			if c == '#' {
				for i < len(re) && re[i] != '\n' {
					i++
				}
				continue
			}
		}
		wasQuant := prevQuant
		prevQuant = false
		switch {
		case c == '\\':
			if i+1 >= len(re) {
				return "", errf(kw, "trailing backslash", "")
			}
			n, err := translateEscape(&b, re, i, inClass)
			if err != nil {
				return "", err
			}
			i = n
			continue
		case inClass:
			if c == ']' && i > classStart {
				inClass = false
			}
			if c == '[' && i+1 < len(re) && re[i+1] == ':' {
				// POSIX class [:alpha:] inside a class: copy through ":]".
				j := strings.Index(re[i:], ":]")
				if j < 0 {
					return "", errf(kw, "bad POSIX class", "")
				}
				b.WriteString(re[i : i+j+2])
				i += j + 1
				continue
			}
			b.WriteByte(c)
			continue
		case c == '[':
			inClass = true
			b.WriteByte(c)
			// A leading ] (after an optional ^) is a literal.
			j := i + 1
			if j < len(re) && re[j] == '^' {
				b.WriteByte('^')
				j++
			}
			if j < len(re) && re[j] == ']' {
				b.WriteString(`\]`)
				j++
			}
			i = j - 1
			classStart = j
			continue
		case c == '(':
			n, err := translateGroup(&b, re, i)
			if err != nil {
				return "", err
			}
			i = n
			continue
		case c == '*' || c == '+' || c == '?':
			if wasQuant {
				if c == '+' {
					return "", unsupported(kw, "possessive quantifier", "RE2 has no possessive quantifiers")
				}
				if c == '?' {
					b.WriteByte(c) // lazy
					continue
				}
			}
			b.WriteByte(c)
			prevQuant = true
			continue
		case c == '{':
			j := strings.IndexByte(re[i:], '}')
			if j > 0 {
				if lo, hi, ok := parseRepeat(re[i+1 : i+j]); ok {
					if lo > maxRepeat || hi > maxRepeat {
						return "", unsupported(kw, "beyond RE2 size limits", fmt.Sprintf("repeat {%s} above 1000", re[i+1:i+j]))
					}
					b.WriteString(re[i : i+j+1])
					i += j
					prevQuant = true
					continue
				}
			}
			b.WriteString(`\{`)
			continue
		case c == '}':
			b.WriteString(`\}`)
			continue
		case c == '$':
			switch {
			case fl.multiline:
				b.WriteByte('$')
			case fl.dollarEnd:
				b.WriteString(`\z`)
			default:
				b.WriteString(`(?:\n?\z)`)
			}
			continue
		}
		b.WriteByte(c)
	}
	if inClass {
		return "", errf(kw, "unterminated character class", "")
	}
	out := b.String()
	if fl.anchored {
		out = `\A(?:` + out + `)`
	}
	var f string
	if fl.caseless {
		f += "i"
	}
	if fl.multiline {
		f += "m"
	}
	if fl.dotall {
		f += "s"
	}
	if fl.ungreedy {
		f += "U"
	}
	if f != "" {
		out = "(?" + f + ")" + out
	}
	return out, nil
}

// parseRepeat parses the inside of {n}, {n,} or {n,m}.
func parseRepeat(s string) (lo, hi int, ok bool) {
	a, c, comma := strings.Cut(s, ",")
	if a == "" {
		return 0, 0, false
	}
	x, err := strconv.Atoi(a)
	if err != nil || x < 0 {
		return 0, 0, false
	}
	if !comma {
		return x, x, true
	}
	if c == "" {
		return x, 0, true
	}
	y, err := strconv.Atoi(c)
	if err != nil || y < x {
		return 0, 0, false
	}
	return x, y, true
}

// translateGroup handles "(" at re[i] and returns the index of the last
// byte consumed.
func translateGroup(b *strings.Builder, re string, i int) (int, *Error) {
	const kw = "pcre"
	rest := re[i+1:]
	if !strings.HasPrefix(rest, "?") && !strings.HasPrefix(rest, "*") {
		b.WriteByte('(')
		return i, nil
	}
	if strings.HasPrefix(rest, "*") {
		return 0, unsupported(kw, "backtracking verb", "(*VERB) is PCRE-only")
	}
	switch {
	case strings.HasPrefix(rest, "?:"):
		b.WriteString("(?:")
		return i + 2, nil
	case strings.HasPrefix(rest, "?="), strings.HasPrefix(rest, "?!"),
		strings.HasPrefix(rest, "?<="), strings.HasPrefix(rest, "?<!"):
		return 0, unsupported(kw, "lookaround", "RE2 has no lookahead or lookbehind")
	case strings.HasPrefix(rest, "?>"):
		return 0, unsupported(kw, "atomic group", "RE2 has no atomic groups")
	case strings.HasPrefix(rest, "?#"):
		j := strings.IndexByte(rest, ')')
		if j < 0 {
			return 0, errf(kw, "unterminated comment", "")
		}
		return i + 1 + j, nil
	case strings.HasPrefix(rest, "?P<"), strings.HasPrefix(rest, "?<"):
		j := strings.IndexByte(rest, '>')
		if j < 0 {
			return 0, errf(kw, "bad group name", "")
		}
		name := rest[strings.IndexByte(rest, '<')+1 : j]
		b.WriteString("(?P<" + name + ">")
		return i + 1 + j, nil
	case strings.HasPrefix(rest, "?P="), strings.HasPrefix(rest, "?P>"), strings.HasPrefix(rest, "?&"):
		return 0, unsupported(kw, "backreference", "named backreference or subroutine")
	case strings.HasPrefix(rest, "?("):
		return 0, unsupported(kw, "conditional", "RE2 has no conditionals")
	case strings.HasPrefix(rest, "?|"):
		return 0, unsupported(kw, "branch reset", "")
	case strings.HasPrefix(rest, "?R"), len(rest) > 1 && (rest[1] >= '0' && rest[1] <= '9' || rest[1] == '+' || rest[1] == '-' && len(rest) > 2 && rest[2] >= '0' && rest[2] <= '9'):
		return 0, unsupported(kw, "recursion", "RE2 has no recursion")
	}
	// Inline flags: (?imsU-imsU) or (?imsU-imsU:...).
	j := 1
	for j < len(rest) && strings.IndexByte("imsU-", rest[j]) >= 0 {
		j++
	}
	if j < len(rest) && (rest[j] == ')' || rest[j] == ':') && j > 1 {
		b.WriteString("(" + rest[:j+1])
		return i + 1 + j, nil
	}
	if j < len(rest) && strings.IndexByte("xXJn", rest[j]) >= 0 {
		return 0, unsupported(kw, "inline flag", fmt.Sprintf("(?%c)", rest[j]))
	}
	return 0, errf(kw, "bad group", "%q", truncate(re[i:], 20))
}

// translateEscape handles the backslash at re[i] and returns the index of
// the last byte consumed.
func translateEscape(b *strings.Builder, re string, i int, inClass bool) (int, *Error) {
	const kw = "pcre"
	c := re[i+1]
	byteEsc := func(v int) *Error {
		if v > 0x7f {
			return unsupported(kw, "byte above 0x7f", fmt.Sprintf("\\x%02x: Go regexp matches UTF-8, not bytes", v))
		}
		fmt.Fprintf(b, `\x%02x`, v)
		return nil
	}
	switch {
	case c >= '1' && c <= '9':
		return 0, unsupported(kw, "backreference", fmt.Sprintf("\\%c", c))
	case c == '0':
		j, v := i+2, 0
		for k := 0; k < 2 && j < len(re) && re[j] >= '0' && re[j] <= '7'; k++ {
			v = v*8 + int(re[j]-'0')
			j++
		}
		return j - 1, byteEsc(v)
	case c == 'x':
		j := i + 2
		var hex string
		if j < len(re) && re[j] == '{' {
			k := strings.IndexByte(re[j:], '}')
			if k < 0 {
				return 0, errf(kw, "bad \\x{} escape", "")
			}
			hex = re[j+1 : j+k]
			j += k + 1
		} else {
			k := j
			for k < len(re) && k < j+2 && hexDigit(re[k]) >= 0 {
				k++
			}
			hex = re[j:k]
			j = k
		}
		v, err := strconv.ParseUint(hex, 16, 32)
		if hex == "" {
			v, err = 0, nil
		}
		if err != nil {
			return 0, errf(kw, "bad \\x escape", "%q", hex)
		}
		return j - 1, byteEsc(int(v))
	case c == 'c':
		if i+2 >= len(re) {
			return 0, errf(kw, "bad \\c escape", "")
		}
		x := re[i+2]
		if x >= 'a' && x <= 'z' {
			x -= 32
		}
		return i + 2, byteEsc(int(x ^ 0x40))
	case c == 'e':
		b.WriteString(`\x1b`)
	case c == 'Z':
		if inClass {
			return 0, errf(kw, "\\Z in a class", "")
		}
		b.WriteString(`(?:\n?\z)`)
	case c == 'h':
		if inClass {
			b.WriteString(`\t `)
		} else {
			b.WriteString(`[\t ]`)
		}
	case c == 'v':
		if inClass {
			b.WriteString(`\n\x0b\f\r`)
		} else {
			b.WriteString(`[\n\x0b\f\r]`)
		}
	case c == 'R':
		if inClass {
			return 0, errf(kw, "\\R in a class", "")
		}
		b.WriteString(`(?:\r\n|[\n\x0b\f\r])`)
	case c == 'E':
		// A stray \E is ignored by PCRE.
	case c == 'Q':
		j := strings.Index(re[i+2:], `\E`)
		lit := re[i+2:]
		end := len(re) - 1
		if j >= 0 {
			lit = re[i+2 : i+2+j]
			end = i + 2 + j + 1
		}
		for k := 0; k < len(lit); k++ {
			if lit[k] >= 0x80 {
				return 0, unsupported(kw, "byte above 0x7f", "Go regexp matches UTF-8, not bytes")
			}
		}
		b.WriteString(regexp.QuoteMeta(lit))
		return end, nil
	case c == 'p' || c == 'P':
		b.WriteByte('\\')
		b.WriteByte(c)
		j := i + 2
		if j < len(re) && re[j] == '{' {
			k := strings.IndexByte(re[j:], '}')
			if k < 0 {
				return 0, errf(kw, "bad \\p escape", "")
			}
			b.WriteString(re[j : j+k+1])
			return j + k, nil
		}
		if j < len(re) {
			b.WriteByte(re[j])
			return j, nil
		}
		return 0, errf(kw, "bad \\p escape", "")
	case c == 'k' || c == 'g':
		return 0, unsupported(kw, "backreference", fmt.Sprintf("\\%c", c))
	case c == 'K':
		return 0, unsupported(kw, "match start reset", "\\K")
	case c == 'G':
		return 0, unsupported(kw, "\\G anchor", "")
	case strings.IndexByte("AbBdDsSwWtnrfaz", c) >= 0:
		if inClass && strings.IndexByte("AbBz", c) >= 0 {
			if c == 'b' {
				b.WriteString(`\x08`) // backspace inside a class
				return i + 1, nil
			}
			return 0, errf(kw, "assertion in a class", "\\%c", c)
		}
		b.WriteByte('\\')
		b.WriteByte(c)
	case c >= 0x80:
		return 0, unsupported(kw, "byte above 0x7f", "Go regexp matches UTF-8, not bytes")
	case c < 'A' || c > 'z' || (c > 'Z' && c < 'a'):
		// Escaped punctuation or space: a literal in both dialects.
		if c == ' ' || c < 0x20 {
			fmt.Fprintf(b, `\x%02x`, c)
		} else {
			b.WriteByte('\\')
			b.WriteByte(c)
		}
	default:
		return 0, unsupported(kw, "escape", fmt.Sprintf("\\%c has no RE2 equivalent", c))
	}
	return i + 1, nil
}
