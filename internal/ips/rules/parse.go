package rules

import (
	"fmt"
	"strconv"
	"strings"
)

// Limits on one rule. Real ET Open rules stay far below them.
const (
	// MaxRuleBytes bounds the text of one rule.
	MaxRuleBytes = 64 << 10
	maxOptions   = 512
	maxMatches   = 256
	maxFlowbits  = 32
	maxRefs      = 64
)

// Options configure parsing. The zero value uses DefaultVars and does not
// check classtypes.
type Options struct {
	// Vars resolves $NAME in addresses and ports; nil means DefaultVars().
	Vars Vars
	// Classes, when non-nil, resolves classtypes to priorities, and a rule
	// naming a classtype missing from it is an error (as in Suricata).
	Classes Classifications
	// Disabled lists keywords (or protocol names) the caller cannot
	// evaluate; rules using them are skipped as unsupported.
	Disabled []string

	// Load limits; zero means the default in load.go.
	MaxLineBytes  int
	MaxRules      int
	MaxTotalBytes int64
}

// Error is why one rule did not load. Unsupported errors are the expected
// kind (a keyword, protocol or regexp feature outside the subset); the rest
// are malformed or contradictory rules.
type Error struct {
	Line        int    // 1-based line in the loaded file, 0 for Parse
	SID         uint32 // 0 when not yet known
	Keyword     string // the option or header field at fault
	Category    string // a fixed phrase, used as the statistics key
	Detail      string // the specifics, with values from the rule
	Unsupported bool
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.SID != 0 {
		fmt.Fprintf(&b, "sid %d: ", e.SID)
	}
	if e.Unsupported {
		b.WriteString("unsupported: ")
	}
	b.WriteString(e.Key())
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	return b.String()
}

// Key is the statistics key: the keyword and the fixed category.
func (e *Error) Key() string {
	if e.Keyword == "" {
		return e.Category
	}
	return e.Keyword + ": " + e.Category
}

func errf(kw, cat, format string, a ...any) *Error {
	return &Error{Keyword: kw, Category: cat, Detail: fmt.Sprintf(format, a...)}
}

func unsupported(kw, cat, detail string) *Error {
	return &Error{Keyword: kw, Category: cat, Detail: detail, Unsupported: true}
}

// parser holds per-load state: option settings and caches of expanded
// address and port expressions (rule sets repeat a handful of them).
type parser struct {
	vars      Vars
	classes   Classifications
	disabled  map[string]bool
	addrCache map[string]AddrSet
	portCache map[string]PortSet
}

func newParser(opts *Options) *parser {
	p := &parser{addrCache: map[string]AddrSet{}, portCache: map[string]PortSet{}, disabled: map[string]bool{}}
	if opts != nil {
		p.vars = opts.Vars
		p.classes = opts.Classes
		for _, k := range opts.Disabled {
			p.disabled[k] = true
		}
	}
	if p.vars == nil {
		p.vars = DefaultVars()
	}
	return p
}

// Parse parses one rule. A nil opts uses the defaults.
func Parse(text string, opts *Options) (*Rule, error) {
	r, err := newParser(opts).parse(text)
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (p *parser) parse(text string) (*Rule, *Error) {
	if len(text) > MaxRuleBytes {
		return nil, errf("", "rule too long", "%d bytes, limit %d", len(text), MaxRuleBytes)
	}
	text = strings.TrimSpace(text)
	open := strings.IndexByte(text, '(')
	if open < 0 || !strings.HasSuffix(text, ")") {
		return nil, errf("", "malformed rule", "expected \"header (options)\"")
	}
	r := &Rule{Raw: text, GID: 1, Priority: 0}
	if err := p.header(r, text[:open]); err != nil {
		return nil, err
	}
	opts, err := splitOptions(text[open+1 : len(text)-1])
	if err != nil {
		return nil, err
	}
	// The sid is looked up first so that every later error names it.
	for _, o := range opts {
		if o.name == "sid" {
			if v, err := strconv.ParseUint(o.value, 10, 32); err == nil {
				r.SID = uint32(v)
			}
		}
	}
	st := newRuleState(r)
	for _, o := range opts {
		if p.disabled[o.name] {
			return r, withSID(unsupported("", "keyword "+o.name, "disabled by the engine"), r)
		}
		if err := p.option(st, o); err != nil {
			return r, withSID(err, r)
		}
	}
	if err := st.finish(p); err != nil {
		return r, withSID(err, r)
	}
	return r, nil
}

func withSID(e *Error, r *Rule) *Error {
	e.SID = r.SID
	return e
}

// headerFields splits the header at whitespace outside brackets.
func headerFields(s string) ([]string, *Error) {
	var out []string
	depth, start := 0, -1
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '[':
			depth++
		case c == ']':
			depth--
		}
		if depth < 0 || depth > maxGroupDepth {
			return nil, errf("header", "unbalanced brackets", "%q", s)
		}
		space := c == ' ' || c == '\t'
		if space && depth == 0 {
			if start >= 0 {
				out = append(out, s[start:i])
				start = -1
			}
		} else if start < 0 {
			start = i
		}
		if len(out) > 7 {
			return nil, errf("header", "malformed header", "too many fields in %q", s)
		}
	}
	if start >= 0 {
		out = append(out, s[start:])
	}
	if depth != 0 {
		return nil, errf("header", "unbalanced brackets", "%q", s)
	}
	return out, nil
}

func (p *parser) header(r *Rule, s string) *Error {
	f, err := headerFields(s)
	if err != nil {
		return err
	}
	if len(f) != 7 {
		return errf("header", "malformed header", "want 7 fields (action proto src port dir dst port), got %d", len(f))
	}
	switch f[0] {
	case "alert":
		r.Action = ActionAlert
	case "drop":
		r.Action = ActionDrop
	case "reject", "rejectsrc", "rejectdst", "rejectboth":
		r.Action = ActionReject
	case "pass":
		r.Action = ActionPass
	default:
		return errf("action", "unknown action", "%q", f[0])
	}
	proto := strings.ToLower(f[1])
	if p.disabled[proto] {
		return unsupported("", "protocol "+proto, "disabled by the engine")
	}
	if pr, ok := protoNames[proto]; ok {
		r.Proto = pr
	} else if knownUnsupportedProtos[proto] {
		return unsupported("", "protocol "+proto, "no parser for this protocol in the engine")
	} else {
		return errf("protocol", "unknown protocol", "%q", f[1])
	}
	switch f[4] {
	case "->":
	case "<>":
		r.Bidirectional = true
	default:
		return errf("direction", "bad direction", "%q (want -> or <>)", f[4])
	}
	var e error
	if r.Src, e = p.addrSet(f[2]); e != nil {
		return errf("source", "bad address", "%v", e)
	}
	if r.SrcPorts, e = p.portSet(f[3]); e != nil {
		return errf("source port", "bad port", "%v", e)
	}
	if r.Dst, e = p.addrSet(f[5]); e != nil {
		return errf("destination", "bad address", "%v", e)
	}
	if r.DstPorts, e = p.portSet(f[6]); e != nil {
		return errf("destination port", "bad port", "%v", e)
	}
	return nil
}

func (p *parser) addrSet(s string) (AddrSet, error) {
	if a, ok := p.addrCache[s]; ok {
		return a, nil
	}
	a, err := ParseAddrSet(s, p.vars)
	if err != nil {
		return a, err
	}
	if len(p.addrCache) < 4096 {
		p.addrCache[s] = a
	}
	return a, nil
}

func (p *parser) portSet(s string) (PortSet, error) {
	if a, ok := p.portCache[s]; ok {
		return a, nil
	}
	a, err := ParsePortSet(s, p.vars)
	if err != nil {
		return a, err
	}
	if len(p.portCache) < 4096 {
		p.portCache[s] = a
	}
	return a, nil
}

// option is one "name[:value]" item of the option list; value is trimmed
// and still escaped.
type option struct {
	name, value string
	hasValue    bool
}

// splitOptions splits the option list at semicolons not escaped as \;.
// Like Suricata, it does not look at quotes: a ";" inside a quoted value
// must be escaped, and an unescaped '"' inside a pcre is harmless.
func splitOptions(s string) ([]option, *Error) {
	var out []option
	var esc bool
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case esc:
			esc = false
		case c == '\\':
			esc = true
		case c == ';':
			item := strings.TrimSpace(s[start:i])
			start = i + 1
			if item == "" {
				continue
			}
			if len(out) >= maxOptions {
				return nil, errf("", "too many options", "limit %d", maxOptions)
			}
			name, value, has := strings.Cut(item, ":")
			out = append(out, option{strings.TrimSpace(name), strings.TrimSpace(value), has})
		}
	}
	if strings.TrimSpace(s[start:]) != "" {
		return nil, errf("", "option not terminated by ';'", "%q", truncate(strings.TrimSpace(s[start:]), 60))
	}
	if len(out) == 0 {
		return nil, errf("", "empty option list", "")
	}
	return out, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// unquote strips the surrounding double quotes of a value and resolves the
// rule-language escapes \" \; \\ and \: (any other escaped character is
// kept with its backslash, as Suricata does for msg).
func unquote(kw, v string, strict bool) (string, *Error) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", errf(kw, "value must be a quoted string", "%q", truncate(v, 60))
	}
	v = v[1 : len(v)-1]
	if !strings.ContainsRune(v, '\\') {
		return v, nil
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		if i+1 >= len(v) {
			return "", errf(kw, "dangling escape", "%q", truncate(v, 60))
		}
		n := v[i+1]
		switch n {
		case '"', ';', '\\', ':':
			b.WriteByte(n)
			i++
		default:
			if strict {
				return "", errf(kw, "invalid escape", "'\\%c' (only \\\" \\; \\\\ \\: are allowed)", n)
			}
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func parseUint32(kw, v string) (uint32, *Error) {
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
	if err != nil {
		return 0, errf(kw, "bad number", "%q", truncate(v, 40))
	}
	return uint32(n), nil
}

// parseInt32 accepts a signed decimal bounded to ±65535, Suricata's
// content position limit.
func parseInt32(kw, v string) (int32, *Error) {
	t := strings.TrimSpace(v)
	n, err := strconv.ParseInt(t, 10, 32)
	if err != nil && isAlpha(t) {
		return 0, unsupported(kw, "byte_extract variables", fmt.Sprintf("%q is a variable", truncate(t, 40)))
	}
	if err != nil || n > 65535 || n < -65535 {
		return 0, errf(kw, "bad number", "%q (want -65535..65535)", truncate(t, 40))
	}
	return int32(n), nil
}

func isAlpha(s string) bool {
	return s != "" && (s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z' || s[0] == '_')
}

// parseIntMatch parses N, <N, >N, <=N, >=N, !N, !=N, =N, N<>M and N-M.
func parseIntMatch(kw, v string, limit uint64) (*IntMatch, *Error) {
	s := strings.TrimSpace(v)
	num := func(t string) (uint64, *Error) {
		n, err := strconv.ParseUint(strings.TrimSpace(t), 10, 64)
		if err != nil || n > limit {
			return 0, errf(kw, "bad number", "%q (want 0..%d)", truncate(t, 40), limit)
		}
		return n, nil
	}
	m := &IntMatch{}
	var err *Error
	for _, sep := range []string{"<>", "-"} {
		if a, b, ok := strings.Cut(s, sep); ok && a != "" {
			if m.A, err = num(a); err != nil {
				return nil, err
			}
			if m.B, err = num(b); err != nil {
				return nil, err
			}
			if m.A >= m.B {
				return nil, errf(kw, "empty range", "%q", s)
			}
			m.Op = CmpRange
			return m, nil
		}
	}
	for _, op := range []struct {
		p  string
		op CmpOp
	}{{"<=", CmpLe}, {">=", CmpGe}, {"!=", CmpNe}, {"<", CmpLt}, {">", CmpGt}, {"!", CmpNe}, {"=", CmpEq}} {
		if strings.HasPrefix(s, op.p) {
			m.Op = op.op
			m.A, err = num(s[len(op.p):])
			return m, err
		}
	}
	m.Op = CmpEq
	m.A, err = num(s)
	return m, err
}
