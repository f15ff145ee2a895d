package rules

// defaultPriority is Suricata's priority for a rule with neither a priority
// nor a classtype that has one.
const defaultPriority = 3

// finish validates the whole rule once every option is read, resolves the
// priority and the application protocol, and chooses the fast pattern.
func (st *ruleState) finish(p *parser) *Error {
	r := st.r
	if !st.sawSID {
		return errf("sid", "missing", "every rule needs a sid")
	}
	if !st.sawPrio {
		r.Priority = defaultPriority
		if c, ok := p.classes[r.Classtype]; ok && r.Classtype != "" {
			r.Priority = c.Priority
		}
	}
	if err := st.checkBuffers(); err != nil {
		return err
	}
	if err := st.checkProtocols(); err != nil {
		return err
	}
	r.Fast = chooseFastPattern(r)
	return nil
}

func (st *ruleState) checkBuffers() *Error {
	for _, bm := range st.r.Buffers {
		if len(bm.Matches) == 0 && bm.Bsize == nil && bm.Buffer != BufPayload {
			return errf(bm.Buffer.String(), "sticky buffer without a match", "")
		}
		for _, m := range bm.Matches {
			c := m.Content
			if c == nil {
				continue
			}
			kw := "content"
			if c.StartsWith && (c.HasOffset || c.HasDepth || c.Relative()) {
				return errf("startswith", "conflicts with offset, depth, distance or within", "")
			}
			if c.Rawbytes && bm.Buffer != BufPayload {
				return errf("rawbytes", "only for the payload", "content is in %s", bm.Buffer)
			}
			if c.FastPatternOnly && (c.Relative() || c.HasOffset || c.HasDepth) {
				return errf("fast_pattern", "only conflicts with positional or negated content", "")
			}
			if c.HasDepth && c.HasOffset && c.Depth < int32(len(c.Pattern)) {
				return errf(kw, "depth smaller than the pattern", "")
			}
		}
	}
	return nil
}

// checkProtocols derives the rule's application protocol from its header
// and buffers, and refuses contradictions: buffers of two protocols, a
// buffer of another protocol than the header's, buffers that exist only in
// opposite directions, or a flow direction that contradicts a buffer.
func (st *ruleState) checkProtocols() *Error {
	r := st.r
	app := r.Proto.AppProto()
	if st.needApp != AppNone {
		if app != AppNone && app != st.needApp {
			return errf("urilen", "protocol conflict", "http keyword in a %s rule", app)
		}
		app = st.needApp
	}
	var dir bufDir
	for _, bm := range r.Buffers {
		bi := bufferTable[bm.Buffer]
		if bi.app != AppNone {
			if app != AppNone && app != bi.app {
				return errf(bm.Buffer.String(), "protocol conflict", "%s buffer in a %s rule", bi.app, app)
			}
			switch r.Proto {
			case ProtoUDP, ProtoICMP, ProtoTCPPkt, ProtoPktHdr:
				if bi.app != AppDNS || r.Proto != ProtoUDP {
					return errf(bm.Buffer.String(), "protocol conflict", "%s buffer in a %s rule", bi.app, r.Proto)
				}
			}
			app = bi.app
		}
		if bi.dir != dirBoth {
			if dir != dirBoth && dir != bi.dir {
				return errf(bm.Buffer.String(), "direction conflict", "buffers of both directions in one rule")
			}
			dir = bi.dir
		}
	}
	if dir == dirToServer && r.Flow.ToClient || dir == dirToClient && r.Flow.ToServer {
		return errf("flow", "direction conflict", "flow direction contradicts the buffers")
	}
	r.AppProto = app
	return nil
}

// PatternStrength scores a pattern's byte diversity as Suricata does for
// fast-pattern ties: 3 for a new letter, 4 for a new printable (or 0x00,
// 0x01, 0xff), 6 for another new byte, 1 for a repeated byte.
func PatternStrength(p []byte) int {
	var seen [256]bool
	s := 0
	for _, c := range p {
		if seen[c] {
			s++
			continue
		}
		seen[c] = true
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			s += 3
		case c >= 0x20 && c < 0x7f || c == 0 || c == 1 || c == 0xff:
			s += 4
		default:
			s += 6
		}
	}
	return s
}

// chooseFastPattern picks the content the prefilter indexes: the one marked
// fast_pattern; else, among positive contents (negated ones only when there
// is no positive content), the one in the highest-priority buffer, then
// the longest, then the strongest, then the first in the rule.
func chooseFastPattern(r *Rule) *FastPattern {
	hasPositive := false
	for _, bm := range r.Buffers {
		for _, m := range bm.Matches {
			if m.Content != nil && !m.Content.Negated {
				hasPositive = true
			}
		}
	}
	var best *Content
	var fp FastPattern
	bestStrength := 0
	for bi, bm := range r.Buffers {
		for mi, m := range bm.Matches {
			c := m.Content
			if c == nil {
				continue
			}
			if c.FastPattern {
				best, fp = c, FastPattern{Buffer: bm.Buffer, Explicit: true, BufferIndex: bi, MatchIndex: mi}
				goto done
			}
			if c.Negated && hasPositive {
				continue
			}
			s := PatternStrength(c.Pattern)
			if best != nil {
				bp, cp := fp.Buffer.Priority(), bm.Buffer.Priority()
				switch {
				case cp > bp:
					continue
				case cp == bp && len(c.Pattern) < len(best.Pattern):
					continue
				case cp == bp && len(c.Pattern) == len(best.Pattern) && s <= bestStrength:
					continue
				}
			}
			best, bestStrength = c, s
			fp = FastPattern{Buffer: bm.Buffer, BufferIndex: bi, MatchIndex: mi}
		}
	}
	if best == nil {
		return nil
	}
done:
	fp.Bytes = best.Pattern
	if best.HasChop {
		fp.Bytes = best.Pattern[best.ChopOffset : best.ChopOffset+best.ChopLength]
	}
	fp.Nocase = best.Nocase
	fp.Negated = best.Negated
	return &fp
}
