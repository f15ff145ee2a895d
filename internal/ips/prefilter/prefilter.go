package prefilter

import (
	"fmt"
	"slices"

	"github.com/bulwark-project/bulwark/internal/ips/rules"
)

// Why a rule is evaluated whenever its buffer is, instead of being selected
// by a pattern (BufferStats.Always is keyed by these).
const (
	// AlwaysNoContent: the rule inspects the buffer with pcre, byte_test
	// or the like, but has no content at all.
	AlwaysNoContent = "no content"
	// AlwaysNegated: the rule's only contents are negated; it matches when
	// a pattern is absent, which a prefilter cannot select on.
	AlwaysNegated = "negated content only"
	// AlwaysTransform: the fast pattern is matched after a transform
	// (strip_whitespace, compress_whitespace) that can create it from
	// bytes that do not contain it, or dotprefix leaves nothing to find.
	AlwaysTransform = "transform"
)

// Prefilter selects, per rule buffer, the rules worth evaluating. It is
// immutable once built and safe for concurrent use.
//
// Rules are identified by their index in the slice New was given (for
// FromSet, in rules.Set.Rules).
//
// Candidates takes the buffer as the parsers produce it, before any
// transform a rule applies: a fast pattern behind to_lowercase or
// to_uppercase is indexed case-insensitively, one behind dotprefix without
// its leading dot (both still necessary conditions on the raw buffer), and
// one behind a whitespace transform makes the rule an always-candidate.
type Prefilter struct {
	bufs [256]*bufferIndex
	// unconditional holds, per rules.AppProto, the rules that inspect no
	// buffer at all (dsize, flags, flowbits, ...): the engine evaluates
	// them on every packet their header selects.
	unconditional [4][]int32
	order         []rules.Buffer // buffers with an index, ascending
	// stream is the automaton shared by the StreamGroup buffers (nil
	// when none has a pattern); bodyPat[i] says whether its pattern i
	// selects a rule of a body buffer (any group member but payload).
	stream  *Matcher
	bodyPat []bool
}

// StreamGroup lists the buffers whose patterns share one automaton. A
// body sent as is (no chunking, no compression) is a run of the stream's
// bytes, so one scan of the stream with the shared automaton finds the
// candidates of the payload and of the bodies it carries
// (StreamPatterns, SelectStream); the body need not be scanned again.
var StreamGroup = [...]rules.Buffer{rules.BufPayload, rules.BufHTTPRequestBody, rules.BufHTTPResponseBody, rules.BufFileData}

func inStreamGroup(b rules.Buffer) bool {
	for _, g := range StreamGroup {
		if b == g {
			return true
		}
	}
	return false
}

type bufferIndex struct {
	m *Matcher // nil when no rule has a pattern in the buffer
	// ruleOff[p]..ruleOff[p+1] index the rules sharing pattern p in
	// ruleIDs.
	ruleOff []uint32
	ruleIDs []int32
	always  []int32
	stats   BufferStats
}

// BufferStats describes the index of one buffer.
type BufferStats struct {
	Buffer   rules.Buffer
	Patterns int // distinct patterns
	Indexed  int // rules selected through a pattern
	// Truncated counts patterns longer than MaxPatternLen, indexed by
	// their first MaxPatternLen bytes.
	Truncated int
	// Always counts the rules evaluated whenever the buffer is, by
	// reason (AlwaysNoContent, ...).
	Always  map[string]int
	Matcher Stats
}

// FromSet builds a Prefilter from a loaded rule set.
func FromSet(s *rules.Set, opts *Options) (*Prefilter, error) { return New(s.Rules, opts) }

// New builds a Prefilter from rules; opts bounds each buffer's Matcher and,
// through MaxBytes, all of them together.
func New(rs []*rules.Rule, opts *Options) (*Prefilter, error) {
	o := opts.withDefaults()
	if len(rs) > o.MaxPatterns {
		return nil, fmt.Errorf("%w: %d rules, limit %d", ErrTooLarge, len(rs), o.MaxPatterns)
	}
	type pending struct {
		pats  []Pattern
		key   map[string]int32
		rules [][]int32 // per pattern
		bi    *bufferIndex
	}
	var per [256]*pending
	// shared holds the StreamGroup's patterns; their buffers' pending
	// entries keep only their own rule lists (rules per shared pattern).
	shared := &pending{key: map[string]int32{}}
	get := func(b rules.Buffer) *pending {
		if per[b] == nil {
			per[b] = &pending{key: map[string]int32{}, bi: &bufferIndex{stats: BufferStats{Buffer: b, Always: map[string]int{}}}}
		}
		return per[b]
	}
	p := &Prefilter{}
	for i, r := range rs {
		id := int32(i)
		if r.Fast == nil && len(r.Buffers) == 0 {
			app := r.AppProto
			if int(app) >= len(p.unconditional) {
				return nil, fmt.Errorf("prefilter: rule %d (sid %d): application protocol %d unknown", i, r.SID, app)
			}
			p.unconditional[app] = append(p.unconditional[app], id)
			continue
		}
		buf, pat, reason := fastPattern(r)
		pe := get(buf)
		if reason != "" {
			pe.bi.always = append(pe.bi.always, id)
			pe.bi.stats.Always[reason]++
			continue
		}
		if len(pat.Bytes) > MaxPatternLen {
			pat.Bytes = pat.Bytes[:MaxPatternLen]
			pe.bi.stats.Truncated++
		}
		k := patternKey(pat)
		if inStreamGroup(buf) {
			pi, ok := shared.key[k]
			if !ok {
				pi = int32(len(shared.pats))
				shared.key[k] = pi
				shared.pats = append(shared.pats, pat)
			}
			if _, ok := pe.key[k]; !ok {
				pe.key[k] = pi
				pe.bi.stats.Patterns++
			}
			for len(pe.rules) <= int(pi) {
				pe.rules = append(pe.rules, nil)
			}
			pe.rules[pi] = append(pe.rules[pi], id)
			pe.bi.stats.Indexed++
			continue
		}
		pi, ok := pe.key[k]
		if !ok {
			pi = int32(len(pe.pats))
			pe.key[k] = pi
			pe.pats = append(pe.pats, pat)
			pe.rules = append(pe.rules, nil)
		}
		pe.rules[pi] = append(pe.rules[pi], id)
		pe.bi.stats.Indexed++
	}

	budget := o.MaxBytes
	if len(shared.pats) > 0 {
		// The shared automaton is as large as its members' together; it
		// gets their dense budget together.
		so := o
		so.MaxBytes = budget
		so.DenseBytes = min(2*o.DenseBytes, budget)
		m, err := Compile(shared.pats, &so)
		if err != nil {
			return nil, fmt.Errorf("prefilter: stream buffers: %w", err)
		}
		budget -= m.stats.Bytes
		p.stream = m
		p.bodyPat = make([]bool, len(shared.pats))
		for _, b := range StreamGroup {
			pe := per[b]
			if pe == nil {
				continue
			}
			for len(pe.rules) < len(shared.pats) {
				pe.rules = append(pe.rules, nil)
			}
			bi := pe.bi
			bi.m = m
			bi.stats.Matcher = m.stats
			bi.ruleOff = make([]uint32, len(pe.rules)+1)
			for pi, ids := range pe.rules {
				bi.ruleIDs = append(bi.ruleIDs, ids...)
				bi.ruleOff[pi+1] = uint32(len(bi.ruleIDs))
				if len(ids) > 0 && b != rules.BufPayload {
					p.bodyPat[pi] = true
				}
			}
			pe.pats = nil
		}
	}
	for b, pe := range per {
		if pe == nil {
			continue
		}
		bi := pe.bi
		if len(pe.pats) > 0 {
			bo := o
			bo.MaxBytes = budget
			bo.DenseBytes = min(o.DenseBytes, budget)
			m, err := Compile(pe.pats, &bo)
			if err != nil {
				return nil, fmt.Errorf("prefilter: buffer %s: %w", rules.Buffer(b), err)
			}
			budget -= m.stats.Bytes
			bi.m = m
			bi.stats.Matcher = m.stats
			bi.ruleOff = make([]uint32, len(pe.rules)+1)
			for pi, ids := range pe.rules {
				bi.ruleIDs = append(bi.ruleIDs, ids...)
				bi.ruleOff[pi+1] = uint32(len(bi.ruleIDs))
			}
		}
		if !inStreamGroup(rules.Buffer(b)) {
			bi.stats.Patterns = len(pe.pats)
		}
		p.bufs[b] = bi
		p.order = append(p.order, rules.Buffer(b))
	}
	return p, nil
}

// patternKey identifies a pattern for sharing: nocase patterns compare
// folded, so "GET"/i and "get"/i are one pattern.
func patternKey(pat Pattern) string {
	k := make([]byte, 1+len(pat.Bytes))
	for i, c := range pat.Bytes {
		if pat.Nocase {
			c = fold[c]
		}
		k[i+1] = c
	}
	if pat.Nocase {
		k[0] = 1
	}
	return string(k)
}

// fastPattern returns the buffer a rule is filed under and the pattern
// that selects it, or a reason (Always*) why the rule must be evaluated
// whenever the buffer is.
func fastPattern(r *rules.Rule) (rules.Buffer, Pattern, string) {
	if r.Fast == nil {
		return r.Buffers[0].Buffer, Pattern{}, AlwaysNoContent
	}
	fp := r.Fast
	if fp.Negated {
		return fp.Buffer, Pattern{}, AlwaysNegated
	}
	pat := Pattern{Bytes: fp.Bytes, Nocase: fp.Nocase}
	if fp.BufferIndex < 0 || fp.BufferIndex >= len(r.Buffers) {
		return fp.Buffer, pat, ""
	}
	// Undo the transforms from the last to the first: each step turns "the
	// pattern occurs in t(B)" into a necessary condition on B.
	ts := r.Buffers[fp.BufferIndex].Transforms
	for i := len(ts) - 1; i >= 0; i-- {
		switch ts[i] {
		case rules.TransformToLower, rules.TransformToUpper:
			pat.Nocase = true
		case rules.TransformDotPrefix:
			// "." + B contains P: either P starts at the added dot
			// (then P[1:] starts B) or P lies inside B.
			if len(pat.Bytes) > 0 && pat.Bytes[0] == '.' {
				pat.Bytes = pat.Bytes[1:]
			}
		default:
			return fp.Buffer, Pattern{}, AlwaysTransform
		}
	}
	if len(pat.Bytes) == 0 {
		return fp.Buffer, Pattern{}, AlwaysTransform
	}
	return fp.Buffer, pat, ""
}

// Candidates returns the rules to evaluate for buffer buf holding data:
// those whose fast pattern occurs in data, and those filed under buf
// without a usable pattern (Always). Each rule appears once; the slice is
// in ascending rule order, owned by sc and valid until sc's next use.
// Steady-state calls allocate nothing.
func (p *Prefilter) Candidates(buf rules.Buffer, data []byte, sc *Scratch) []int32 {
	bi := p.bufs[buf]
	sc.rules = sc.rules[:0]
	if bi == nil {
		return sc.rules
	}
	sc.rules = append(sc.rules, bi.always...)
	if bi.m == nil {
		return sc.rules
	}
	sc.ids = bi.m.AppendSet(sc.ids[:0], data, sc)
	if len(sc.ids) == 0 {
		return sc.rules
	}
	for _, pi := range sc.ids {
		sc.rules = append(sc.rules, bi.ruleIDs[bi.ruleOff[pi]:bi.ruleOff[pi+1]]...)
	}
	slices.Sort(sc.rules)
	return sc.rules
}

// StreamPatterns returns the StreamGroup patterns occurring in data,
// each once, in no particular order; the slice is owned by sc and valid
// until sc's next use. SelectStream turns them into candidates.
func (p *Prefilter) StreamPatterns(data []byte, sc *Scratch) []int32 {
	sc.ids = sc.ids[:0]
	if p.stream != nil {
		sc.ids = p.stream.AppendSet(sc.ids, data, sc)
	}
	return sc.ids
}

// SelectStream returns the candidates of buf, a StreamGroup buffer, when
// ids (StreamPatterns' results, of one or several scans; repeats allowed)
// are the patterns occurring in it: the rules those patterns select in
// buf, and buf's Always rules; each once, in ascending order. The slice is
// owned by sc (as Candidates' result, which it replaces).
func (p *Prefilter) SelectStream(buf rules.Buffer, ids []int32, sc *Scratch) []int32 {
	sc.rules = sc.rules[:0]
	bi := p.bufs[buf]
	if bi == nil || !inStreamGroup(buf) {
		return sc.rules
	}
	sc.rules = append(sc.rules, bi.always...)
	if bi.m == nil {
		return sc.rules
	}
	for _, pi := range ids {
		sc.rules = append(sc.rules, bi.ruleIDs[bi.ruleOff[pi]:bi.ruleOff[pi+1]]...)
	}
	slices.Sort(sc.rules)
	sc.rules = slices.Compact(sc.rules)
	return sc.rules
}

// Always returns the rules filed under buf that have no usable fast
// pattern (see the Always* reasons). The slice must not be modified.
func (p *Prefilter) Always(buf rules.Buffer) []int32 {
	if bi := p.bufs[buf]; bi != nil {
		return bi.always
	}
	return nil
}

// Unconditional returns the rules that inspect no buffer at all, for
// application protocol app (rules.AppNone: transport-level rules). The
// engine evaluates them on every packet their header selects. The slice
// must not be modified.
func (p *Prefilter) Unconditional(app rules.AppProto) []int32 {
	if int(app) < len(p.unconditional) {
		return p.unconditional[app]
	}
	return nil
}

// Stats returns one entry per buffer that has rules, in buffer order.
func (p *Prefilter) Stats() []BufferStats {
	out := make([]BufferStats, 0, len(p.order))
	for _, b := range p.order {
		out = append(out, p.bufs[b].stats)
	}
	return out
}

// Bytes is the memory held by all the buffers' automata and rule maps.
func (p *Prefilter) Bytes() int {
	n := 0
	for _, b := range p.order {
		bi := p.bufs[b]
		if bi.m != p.stream || bi.m == nil {
			n += bi.stats.Matcher.Bytes
		}
		n += 4 * (len(bi.ruleOff) + len(bi.ruleIDs) + len(bi.always))
	}
	if p.stream != nil {
		n += p.stream.stats.Bytes + len(p.bodyPat)
	}
	for _, u := range p.unconditional {
		n += 4 * len(u)
	}
	return n
}
