package rules

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Default load limits.
const (
	DefaultMaxLineBytes  = MaxRuleBytes
	DefaultMaxRules      = 200_000
	DefaultMaxTotalBytes = 256 << 20
	// maxContinuations bounds how many physical lines one rule may span.
	maxContinuations = 256
	// maxWarnings bounds the per-rule messages Stats keeps.
	maxWarnings = 1000
)

// Set is a collection of loaded rules, unique by gid:sid.
type Set struct {
	Rules []*Rule
	bySID map[uint64]int
}

// Lookup returns the rule with the given gid and sid, or nil.
func (s *Set) Lookup(gid, sid uint32) *Rule {
	if i, ok := s.bySID[uint64(gid)<<32|uint64(sid)]; ok {
		return s.Rules[i]
	}
	return nil
}

// Stats reports what a load did. Skipped counts rules outside the supported
// subset by reason ("keyword xbits", "protocol smtp", "pcre: lookaround");
// Errors counts malformed or contradictory rules by reason.
type Stats struct {
	Lines      int // physical lines read
	Rules      int // rule texts seen (not comments or blank lines)
	Loaded     int // rules in the set
	Skipped    map[string]int
	Errors     map[string]int
	Duplicates int // rules whose gid:sid was already loaded
	// DuplicateSIDs lists the first duplicated sids, at most 100.
	DuplicateSIDs []uint32
	// Warnings holds one line per rule not loaded, the first 1000.
	Warnings []string
	// Limit is set when a load limit stopped the load early.
	Limit string
}

// SkippedTotal is the number of rules skipped as unsupported.
func (s Stats) SkippedTotal() int { return sumMap(s.Skipped) }

// ErrorTotal is the number of rules refused as malformed.
func (s Stats) ErrorTotal() int { return sumMap(s.Errors) }

func sumMap(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// ReasonCount is one row of a sorted reason table.
type ReasonCount struct {
	Reason string
	Count  int
}

// Top returns the reasons of m sorted by count, then name.
func Top(m map[string]int) []ReasonCount {
	out := make([]ReasonCount, 0, len(m))
	for k, v := range m {
		out = append(out, ReasonCount{k, v})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Reason < out[j].Reason
	})
	return out
}

// Loader accumulates rules from one or more files into one Set.
type Loader struct {
	p     *parser
	set   *Set
	stats Stats
	opts  Options
	bytes int64
}

// NewLoader returns a loader with the given options (nil: defaults).
func NewLoader(opts *Options) *Loader {
	l := &Loader{p: newParser(opts), set: &Set{bySID: map[uint64]int{}}}
	if opts != nil {
		l.opts = *opts
	}
	if l.opts.MaxLineBytes <= 0 || l.opts.MaxLineBytes > MaxRuleBytes {
		l.opts.MaxLineBytes = DefaultMaxLineBytes
	}
	if l.opts.MaxRules <= 0 {
		l.opts.MaxRules = DefaultMaxRules
	}
	if l.opts.MaxTotalBytes <= 0 {
		l.opts.MaxTotalBytes = DefaultMaxTotalBytes
	}
	l.stats.Skipped = map[string]int{}
	l.stats.Errors = map[string]int{}
	return l
}

// Load reads one rule file. It returns an error only for a read failure or
// a load limit; bad rules are counted in the stats and skipped.
func Load(r io.Reader, opts *Options) (*Set, Stats) {
	l := NewLoader(opts)
	_ = l.Add(r, "")
	return l.Finish()
}

// errLimit stops a load at a limit.
var errLimit = errors.New("load limit reached")

// Add reads rules from r; name prefixes warnings (a file name, or "").
func (l *Loader) Add(r io.Reader, name string) error {
	if l.stats.Limit != "" {
		return errLimit
	}
	br := bufio.NewReaderSize(r, 64<<10)
	lineNo, ruleLine, parts := 0, 0, 0
	var rule []byte
	discard := false // dropping the continuation lines of a refused rule
	for {
		line, n, tooLong, err := readLine(br, l.opts.MaxLineBytes)
		if n > 0 {
			lineNo++
			l.stats.Lines++
			l.bytes += int64(n)
			if l.bytes > l.opts.MaxTotalBytes {
				l.stats.Limit = fmt.Sprintf("more than %d bytes of rules", l.opts.MaxTotalBytes)
				return errLimit
			}
			t := bytes.TrimSpace(line)
			cont := len(t) > 0 && t[len(t)-1] == '\\'
			switch {
			case discard:
				discard = cont
			case tooLong:
				// Its continuation, if any, cannot be seen: the end of
				// the line is gone. The next line starts afresh.
				l.stats.Rules++
				l.fail(name, lineNo, errf("", "line too long", "limit %d bytes", l.opts.MaxLineBytes))
				rule, parts = rule[:0], 0
			case len(rule) == 0 && (len(t) == 0 || t[0] == '#'):
				// A comment or blank line.
			default:
				if len(rule) == 0 {
					ruleLine = lineNo
				}
				if cont {
					t = t[:len(t)-1]
				}
				if len(rule)+len(t) > l.opts.MaxLineBytes || parts >= maxContinuations {
					l.stats.Rules++
					l.fail(name, ruleLine, errf("", "rule too long", "limit %d bytes", l.opts.MaxLineBytes))
					rule, parts, discard = rule[:0], 0, cont
					break
				}
				rule = append(rule, t...)
				parts++
				if cont && err == nil {
					break
				}
				if stop := l.addRule(name, ruleLine, string(rule)); stop {
					return errLimit
				}
				rule, parts = rule[:0], 0
			}
		}
		if err == io.EOF {
			if len(rule) > 0 {
				if stop := l.addRule(name, ruleLine, string(rule)); stop {
					return errLimit
				}
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading rules %s: %w", name, err)
		}
	}
}

// readLine returns one line without its line end and the bytes consumed; a
// line longer than max is consumed to its end, not kept, and reported as
// tooLong.
func readLine(br *bufio.Reader, max int) (line []byte, n int, tooLong bool, err error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		n += len(chunk)
		if len(buf)+len(chunk) > max+2 {
			tooLong, buf = true, buf[:0]
		} else if !tooLong {
			buf = append(buf, chunk...)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		return bytes.TrimRight(buf, "\r\n"), n, tooLong, err
	}
}

func (l *Loader) addRule(name string, line int, text string) (stop bool) {
	l.stats.Rules++
	r, err := l.p.parse(text)
	if err != nil {
		err.Line = line
		l.fail(name, line, err)
		return false
	}
	key := uint64(r.GID)<<32 | uint64(r.SID)
	if i, ok := l.set.bySID[key]; ok {
		l.stats.Duplicates++
		if len(l.stats.DuplicateSIDs) < 100 {
			l.stats.DuplicateSIDs = append(l.stats.DuplicateSIDs, r.SID)
		}
		// Suricata keeps the higher revision of a duplicated sid.
		if r.Rev > l.set.Rules[i].Rev {
			l.set.Rules[i] = r
		}
		l.warn(name, fmt.Sprintf("line %d: sid %d: duplicate gid:sid %d:%d", line, r.SID, r.GID, r.SID))
		return false
	}
	if len(l.set.Rules) >= l.opts.MaxRules {
		l.stats.Limit = "more than " + strconv.Itoa(l.opts.MaxRules) + " rules"
		return true
	}
	l.set.bySID[key] = len(l.set.Rules)
	l.set.Rules = append(l.set.Rules, r)
	return false
}

func (l *Loader) fail(name string, line int, e *Error) {
	e.Line = line
	if e.Unsupported {
		l.stats.Skipped[e.Key()]++
	} else {
		l.stats.Errors[e.Key()]++
	}
	l.warn(name, e.Error())
}

func (l *Loader) warn(name, msg string) {
	if len(l.stats.Warnings) >= maxWarnings {
		return
	}
	if name != "" {
		msg = name + ": " + msg
	}
	l.stats.Warnings = append(l.stats.Warnings, msg)
}

// Stats returns a copy of the statistics so far (Loaded counts the rules
// in the set now), so a caller can attribute counts to each file it adds.
func (l *Loader) Stats() Stats {
	st := l.stats
	st.Loaded = len(l.set.Rules)
	st.Skipped = maps.Clone(l.stats.Skipped)
	st.Errors = maps.Clone(l.stats.Errors)
	st.Warnings = slices.Clip(l.stats.Warnings)
	return st
}

// Finish returns the set and the statistics of everything added.
func (l *Loader) Finish() (*Set, Stats) {
	l.stats.Loaded = len(l.set.Rules)
	return l.set, l.stats
}

// Classification is one classtype of classification.config.
type Classification struct {
	Name, Description string
	Priority          int
}

// Classifications maps classtype names to their definitions.
type Classifications map[string]Classification

// ParseClassifications parses classification.config: lines of
// "config classification: name,description,priority"; comments (#) and
// blank lines are ignored.
func ParseClassifications(data []byte) (Classifications, error) {
	if len(data) > 4<<20 {
		return nil, fmt.Errorf("classification config: %d bytes, limit 4 MiB", len(data))
	}
	out := Classifications{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		rest, ok := strings.CutPrefix(line, "config classification:")
		if !ok {
			return nil, fmt.Errorf("classification config line %d: want \"config classification: name,description,priority\"", i+1)
		}
		f := strings.Split(rest, ",")
		if len(f) != 3 {
			return nil, fmt.Errorf("classification config line %d: want 3 comma-separated fields, got %d", i+1, len(f))
		}
		name := strings.TrimSpace(f[0])
		prio, err := strconv.Atoi(strings.TrimSpace(f[2]))
		if name == "" || err != nil || prio < 1 || prio > 255 {
			return nil, fmt.Errorf("classification config line %d: bad name or priority", i+1)
		}
		out[name] = Classification{Name: name, Description: strings.TrimSpace(f[1]), Priority: prio}
	}
	return out, nil
}
