package rules

import (
	"strconv"
	"strings"
)

// ruleState is the parser's position inside one rule's option list.
type ruleState struct {
	r   *Rule
	cur Buffer // the active sticky buffer (BufPayload when none)
	// bufs indexes r.Buffers by buffer.
	bufs [numBuffers]*BufferMatch
	// last is the most recent content: the target of content modifiers.
	last    *Content
	lastBuf Buffer
	nmatch  int
	sawSID  bool
	sawPrio bool
	fastSet bool
	// needApp is an app protocol a non-buffer keyword (urilen) implies.
	needApp AppProto
}

func newRuleState(r *Rule) *ruleState { return &ruleState{r: r} }

func (st *ruleState) buffer(b Buffer) *BufferMatch {
	if st.bufs[b] == nil {
		st.bufs[b] = &BufferMatch{Buffer: b}
		st.r.Buffers = append(st.r.Buffers, st.bufs[b])
	}
	return st.bufs[b]
}

func (st *ruleState) add(kw string, m Match) *Error {
	if st.nmatch++; st.nmatch > maxMatches {
		return errf(kw, "too many matches", "limit %d per rule", maxMatches)
	}
	bm := st.buffer(st.cur)
	bm.Matches = append(bm.Matches, m)
	return nil
}

// needContent returns the content a modifier applies to.
func (st *ruleState) needContent(kw string) (*Content, *Error) {
	if st.last == nil {
		return nil, errf(kw, "needs a preceding content", "")
	}
	return st.last, nil
}

// option applies one option to the rule.
func (p *parser) option(st *ruleState, o option) *Error {
	r := st.r
	kw := o.name
	if b, ok := stickyNames[kw]; ok && !o.hasValue {
		st.cur = b
		st.buffer(b)
		return nil
	}
	if b, ok := modifierNames[kw]; ok {
		return st.moveLast(kw, b)
	}
	if t, ok := transformNames[kw]; ok {
		if st.cur == BufPayload {
			return errf(kw, "transform needs a sticky buffer", "")
		}
		bm := st.buffer(st.cur)
		if len(bm.Matches) > 0 {
			return errf(kw, "transform after a match", "transforms must directly follow the sticky buffer")
		}
		if len(bm.Transforms) >= 8 {
			return errf(kw, "too many transforms", "")
		}
		bm.Transforms = append(bm.Transforms, t)
		return nil
	}
	switch kw {
	case "msg":
		s, err := unquote(kw, o.value, false)
		if err != nil {
			return err
		}
		r.Msg = s
	case "sid":
		v, err := parseUint32(kw, o.value)
		if err != nil || v == 0 {
			return errf(kw, "bad sid", "%q", o.value)
		}
		r.SID, st.sawSID = v, true
	case "gid":
		v, err := parseUint32(kw, o.value)
		if err != nil {
			return err
		}
		r.GID = v
	case "rev":
		v, err := parseUint32(kw, o.value)
		if err != nil {
			return err
		}
		r.Rev = v
	case "classtype":
		c := strings.TrimSpace(o.value)
		if c == "" || len(c) > 64 || strings.ContainsAny(c, " \t,\"") {
			return errf(kw, "bad classtype", "%q", truncate(c, 40))
		}
		if p.classes != nil {
			if _, ok := p.classes[c]; !ok {
				return errf(kw, "unknown classtype", "%q is not in classification.config", c)
			}
		}
		r.Classtype = c
	case "priority":
		v, err := parseUint32(kw, o.value)
		if err != nil || v < 1 || v > 255 {
			return errf(kw, "bad priority", "%q (want 1..255)", o.value)
		}
		r.Priority, st.sawPrio = int(v), true
	case "reference":
		t, id, ok := strings.Cut(o.value, ",")
		if !ok || strings.TrimSpace(t) == "" {
			return errf(kw, "bad reference", "%q (want type,id)", truncate(o.value, 60))
		}
		if len(r.References) >= maxRefs {
			return errf(kw, "too many references", "limit %d", maxRefs)
		}
		r.References = append(r.References, Reference{strings.TrimSpace(t), strings.TrimSpace(id)})
	case "metadata":
		for _, item := range strings.Split(o.value, ",") {
			item = strings.TrimSpace(item)
			if item == "" {
				continue
			}
			if len(r.Metadata) >= 256 {
				return errf(kw, "too many metadata items", "limit 256")
			}
			k, v, _ := strings.Cut(item, " ")
			r.Metadata = append(r.Metadata, MetaPair{k, strings.TrimSpace(v)})
		}
	case "target":
		switch strings.TrimSpace(o.value) {
		case "src_ip":
			r.Target = TargetSrc
		case "dest_ip":
			r.Target = TargetDst
		default:
			return errf(kw, "bad target", "%q (want src_ip or dest_ip)", o.value)
		}
	case "flow":
		return parseFlow(&r.Flow, o.value)
	case "flowbits":
		return parseFlowbits(r, o.value, o.hasValue)
	case "noalert":
		r.NoAlert = true
	case "threshold", "detection_filter":
		return parseThreshold(r, kw, o.value)
	case "content", "uricontent":
		return p.content(st, kw, o.value)
	case "nocase", "rawbytes", "startswith", "endswith":
		c, err := st.needContent(kw)
		if err != nil {
			return err
		}
		if o.hasValue {
			return errf(kw, "takes no value", "%q", truncate(o.value, 40))
		}
		switch kw {
		case "nocase":
			if c.Nocase {
				return errf(kw, "repeated", "")
			}
			c.Nocase = true
		case "rawbytes":
			c.Rawbytes = true
		case "startswith":
			if c.StartsWith {
				return errf(kw, "repeated", "")
			}
			c.StartsWith = true
		case "endswith":
			if c.EndsWith {
				return errf(kw, "repeated", "")
			}
			c.EndsWith = true
		}
	case "offset", "depth", "distance", "within":
		return st.position(kw, o.value)
	case "fast_pattern":
		return st.fastPattern(o.value, o.hasValue)
	case "isdataat":
		return st.isdataat(o.value)
	case "pcre":
		return st.pcre(o.value)
	case "byte_test":
		return st.byteTest(o.value)
	case "byte_jump":
		return st.byteJump(o.value)
	case "dsize":
		if r.Dsize != nil {
			return errf(kw, "repeated", "")
		}
		m, err := parseIntMatch(kw, o.value, 65535)
		if err != nil {
			return err
		}
		r.Dsize = m
	case "itype", "icode":
		m, err := parseIntMatch(kw, o.value, 255)
		if err != nil {
			return err
		}
		if kw == "itype" {
			r.IType = m
		} else {
			r.ICode = m
		}
	case "flags":
		return parseFlags(r, o.value)
	case "bsize":
		if st.cur == BufPayload {
			return errf(kw, "needs a sticky buffer", "")
		}
		bm := st.buffer(st.cur)
		if bm.Bsize != nil {
			return errf(kw, "repeated", "")
		}
		m, err := parseIntMatch(kw, o.value, 1<<32)
		if err != nil {
			return err
		}
		bm.Bsize = m
	case "urilen":
		v, mode, _ := strings.Cut(o.value, ",")
		b := BufHTTPURI
		switch strings.TrimSpace(mode) {
		case "", "norm":
		case "raw":
			b = BufHTTPURIRaw
		default:
			return errf(kw, "bad mode", "%q (want norm or raw)", mode)
		}
		if r.URILen != nil {
			return errf(kw, "repeated", "")
		}
		m, err := parseIntMatch(kw, v, 65535)
		if err != nil {
			return err
		}
		r.URILen, r.URILenRaw = m, b == BufHTTPURIRaw
		if r.AppProto == AppNone {
			st.needApp = AppHTTP
		}
	default:
		if o.hasValue {
			if _, ok := stickyNames[kw]; ok {
				return errf(kw, "sticky buffer takes no value", "%q", truncate(o.value, 40))
			}
		}
		return unsupported("", "keyword "+truncate(kw, 40), "")
	}
	return nil
}

// moveLast applies a legacy content modifier (http_uri, ...): the most
// recent content moves from the payload to that buffer.
func (st *ruleState) moveLast(kw string, to Buffer) *Error {
	c, err := st.needContent(kw)
	if err != nil {
		return err
	}
	if st.lastBuf != BufPayload {
		if st.lastBuf == to {
			return errf(kw, "repeated", "")
		}
		return errf(kw, "modifier conflicts with buffer", "content is already in %s", st.lastBuf)
	}
	from := st.bufs[BufPayload]
	for i := len(from.Matches) - 1; i >= 0; i-- {
		if from.Matches[i].Content == c {
			m := from.Matches[i]
			from.Matches = append(from.Matches[:i], from.Matches[i+1:]...)
			bm := st.buffer(to)
			bm.Matches = append(bm.Matches, m)
			st.lastBuf = to
			return nil
		}
	}
	return errf(kw, "needs a preceding content", "")
}

func (p *parser) content(st *ruleState, kw, v string) *Error {
	neg := false
	v = strings.TrimSpace(v)
	if strings.HasPrefix(v, "!") {
		neg = true
		v = strings.TrimSpace(v[1:])
	}
	s, err := unquote(kw, v, true)
	if err != nil {
		return err
	}
	pat, err := decodeContent(kw, s)
	if err != nil {
		return err
	}
	if len(pat) == 0 {
		return errf(kw, "empty pattern", "")
	}
	c := &Content{Pattern: pat, Negated: neg}
	saved := st.cur
	if kw == "uricontent" {
		st.cur = BufHTTPURI
	}
	if err := st.add(kw, Match{Kind: MatchContent, Content: c}); err != nil {
		return err
	}
	st.last, st.lastBuf = c, st.cur
	st.cur = saved
	return nil
}

// decodeContent resolves |hex| runs in an unescaped content string.
func decodeContent(kw, s string) ([]byte, *Error) {
	out := make([]byte, 0, len(s))
	hex := false
	var nib int = -1
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '|' {
			if hex && nib >= 0 {
				return nil, errf(kw, "odd number of hex digits", "%q", truncate(s, 60))
			}
			hex = !hex
			continue
		}
		if !hex {
			out = append(out, c)
			continue
		}
		if c == ' ' || c == '\t' {
			if nib >= 0 {
				return nil, errf(kw, "odd number of hex digits", "%q", truncate(s, 60))
			}
			continue
		}
		d := hexDigit(c)
		if d < 0 {
			return nil, errf(kw, "bad hex digit", "%q in %q", c, truncate(s, 60))
		}
		if nib < 0 {
			nib = d
		} else {
			out = append(out, byte(nib<<4|d))
			nib = -1
		}
	}
	if hex {
		return nil, errf(kw, "unterminated hex run", "%q", truncate(s, 60))
	}
	return out, nil
}

func hexDigit(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// position applies offset, depth, distance or within to the last content.
// Conflicts follow Suricata: a content is either absolute (offset/depth) or
// relative (distance/within), each modifier at most once, and relative
// modifiers cannot go with a negated fast_pattern.
func (st *ruleState) position(kw, v string) *Error {
	c, err := st.needContent(kw)
	if err != nil {
		return err
	}
	n, err := parseInt32(kw, v)
	if err != nil {
		return err
	}
	abs := kw == "offset" || kw == "depth"
	if abs && c.Relative() || !abs && (c.HasOffset || c.HasDepth) {
		return errf(kw, "mixes absolute and relative modifiers", "offset/depth and distance/within on one content")
	}
	if c.StartsWith {
		return errf(kw, "conflicts with startswith", "")
	}
	if c.FastPatternOnly {
		return errf(kw, "conflicts with fast_pattern:only", "")
	}
	switch kw {
	case "offset":
		if c.HasOffset {
			return errf(kw, "repeated", "")
		}
		if n < 0 {
			return errf(kw, "negative", "%d", n)
		}
		c.HasOffset, c.Offset = true, n
	case "depth":
		if c.HasDepth {
			return errf(kw, "repeated", "")
		}
		if n < int32(len(c.Pattern)) {
			return errf(kw, "smaller than the pattern", "depth %d < pattern length %d", n, len(c.Pattern))
		}
		c.HasDepth, c.Depth = true, n
	case "distance":
		if c.HasDistance {
			return errf(kw, "repeated", "")
		}
		c.HasDistance, c.Distance = true, n
	case "within":
		if c.HasWithin {
			return errf(kw, "repeated", "")
		}
		if n < int32(len(c.Pattern)) {
			return errf(kw, "smaller than the pattern", "within %d < pattern length %d", n, len(c.Pattern))
		}
		c.HasWithin, c.Within = true, n
	}
	return nil
}

func (st *ruleState) fastPattern(v string, has bool) *Error {
	const kw = "fast_pattern"
	c, err := st.needContent(kw)
	if err != nil {
		return err
	}
	if st.fastSet {
		return errf(kw, "set twice", "only one fast_pattern per rule")
	}
	st.fastSet = true
	c.FastPattern = true
	v = strings.TrimSpace(v)
	switch {
	case !has || v == "":
	case v == "only":
		if c.Relative() || c.HasOffset || c.HasDepth || c.Negated {
			return errf(kw, "only conflicts with positional or negated content", "")
		}
		c.FastPatternOnly = true
	default:
		a, b, ok := strings.Cut(v, ",")
		if !ok {
			return errf(kw, "bad value", "%q (want only or offset,length)", truncate(v, 40))
		}
		off, err1 := strconv.ParseUint(strings.TrimSpace(a), 10, 16)
		n, err2 := strconv.ParseUint(strings.TrimSpace(b), 10, 16)
		if err1 != nil || err2 != nil || n == 0 {
			return errf(kw, "bad chop", "%q", truncate(v, 40))
		}
		if off+n > uint64(len(c.Pattern)) {
			return errf(kw, "chop beyond the pattern", "%d,%d for a %d-byte pattern", off, n, len(c.Pattern))
		}
		c.HasChop, c.ChopOffset, c.ChopLength = true, uint16(off), uint16(n)
	}
	if c.Negated && c.Relative() {
		return errf(kw, "negated relative content", "a negated relative content cannot be the fast pattern")
	}
	return nil
}

func (st *ruleState) isdataat(v string) *Error {
	const kw = "isdataat"
	parts := strings.Split(v, ",")
	d := &IsDataAt{}
	n := strings.TrimSpace(parts[0])
	if strings.HasPrefix(n, "!") {
		d.Negated = true
		n = strings.TrimSpace(n[1:])
	}
	if isAlpha(n) {
		return unsupported(kw, "byte_extract variables", n)
	}
	off, err := strconv.ParseUint(n, 10, 16)
	if err != nil {
		return errf(kw, "bad number", "%q", truncate(n, 40))
	}
	d.Offset = uint32(off)
	for _, p := range parts[1:] {
		switch strings.TrimSpace(p) {
		case "relative":
			d.Relative = true
		case "rawbytes":
			d.Rawbytes = true
		default:
			return errf(kw, "bad flag", "%q", truncate(p, 40))
		}
	}
	return st.add(kw, Match{Kind: MatchIsDataAt, IsDataAt: d})
}
