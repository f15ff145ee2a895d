package rules

import (
	"strconv"
	"strings"
)

func parseFlow(f *Flow, v string) *Error {
	const kw = "flow"
	if strings.TrimSpace(v) == "" {
		return errf(kw, "empty", "")
	}
	for _, item := range strings.Split(v, ",") {
		switch strings.TrimSpace(item) {
		case "to_server", "from_client":
			f.ToServer = true
		case "to_client", "from_server":
			f.ToClient = true
		case "established":
			f.Established = true
		case "not_established":
			f.NotEstablished = true
		case "stateless":
			f.Stateless = true
		case "only_stream":
			f.OnlyStream = true
		case "no_stream":
			f.NoStream = true
		case "only_frag":
			f.OnlyFrag = true
		case "no_frag":
			f.NoFrag = true
		default:
			return errf(kw, "unknown flow option", "%q", truncate(strings.TrimSpace(item), 40))
		}
	}
	switch {
	case f.ToServer && f.ToClient:
		return errf(kw, "conflicting options", "to_server and to_client")
	case btoi(f.Established)+btoi(f.NotEstablished)+btoi(f.Stateless) > 1:
		return errf(kw, "conflicting options", "established, not_established and stateless exclude each other")
	case f.OnlyStream && f.NoStream:
		return errf(kw, "conflicting options", "only_stream and no_stream")
	case f.OnlyFrag && f.NoFrag:
		return errf(kw, "conflicting options", "only_frag and no_frag")
	}
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func validFlowbitName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c == ',' || c == ';' || c == '"' || c == '|' || c == '&' || c >= 0x7f {
			return false
		}
	}
	return true
}

func parseFlowbits(r *Rule, v string, has bool) *Error {
	const kw = "flowbits"
	cmd, name, _ := strings.Cut(v, ",")
	cmd, name = strings.TrimSpace(cmd), strings.TrimSpace(name)
	if !has || cmd == "" {
		return errf(kw, "missing command", "")
	}
	if cmd == "noalert" {
		if name != "" {
			return errf(kw, "noalert takes no name", "")
		}
		r.NoAlert = true
		return nil
	}
	fb := Flowbit{}
	switch cmd {
	case "set":
		fb.Cmd = FlowbitSet
	case "isset":
		fb.Cmd = FlowbitIsSet
	case "isnotset":
		fb.Cmd = FlowbitIsNotSet
	case "unset":
		fb.Cmd = FlowbitUnset
	case "toggle":
		fb.Cmd = FlowbitToggle
	default:
		return errf(kw, "unknown command", "%q", truncate(cmd, 40))
	}
	if name == "" {
		return errf(kw, "missing name", "%s needs a flowbit name", cmd)
	}
	sep := ""
	if strings.ContainsRune(name, '|') {
		sep = "|"
	} else if strings.ContainsRune(name, '&') {
		sep, fb.And = "&", true
	}
	if sep != "" {
		if fb.Cmd != FlowbitIsSet && fb.Cmd != FlowbitIsNotSet {
			return errf(kw, "OR/AND lists only for isset and isnotset", "%q", truncate(name, 60))
		}
		if strings.Contains(name, "|") && strings.Contains(name, "&") {
			return errf(kw, "mixes | and &", "%q", truncate(name, 60))
		}
		for _, n := range strings.Split(name, sep) {
			fb.Names = append(fb.Names, strings.TrimSpace(n))
		}
	} else {
		fb.Names = []string{name}
	}
	for _, n := range fb.Names {
		if !validFlowbitName(n) {
			return errf(kw, "bad name", "%q", truncate(n, 60))
		}
	}
	if len(r.Flowbits) >= maxFlowbits {
		return errf(kw, "too many flowbits", "limit %d", maxFlowbits)
	}
	r.Flowbits = append(r.Flowbits, fb)
	return nil
}

func parseThreshold(r *Rule, kw, v string) *Error {
	if r.Threshold != nil || r.DetectionFilter != nil {
		return errf(kw, "repeated", "a rule has at most one threshold or detection_filter")
	}
	t := &Threshold{}
	var sawCount, sawSeconds bool
	for _, item := range strings.Split(v, ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(item), " ")
		val = strings.TrimSpace(val)
		switch k {
		case "type":
			if kw == "detection_filter" {
				return errf(kw, "type not allowed", "detection_filter has no type")
			}
			switch val {
			case "limit":
				t.Type = ThresholdLimit
			case "threshold":
				t.Type = ThresholdThreshold
			case "both":
				t.Type = ThresholdBoth
			default:
				return errf(kw, "bad type", "%q", truncate(val, 40))
			}
		case "track":
			switch val {
			case "by_src":
				t.Track = TrackBySrc
			case "by_dst":
				t.Track = TrackByDst
			case "by_rule":
				t.Track = TrackByRule
			case "by_both":
				t.Track = TrackByBoth
			case "by_flow":
				t.Track = TrackByFlow
			default:
				return errf(kw, "bad track", "%q", truncate(val, 40))
			}
		case "count":
			n, err := strconv.ParseUint(val, 10, 32)
			if err != nil {
				return errf(kw, "bad count", "%q", truncate(val, 40))
			}
			t.Count, sawCount = uint32(n), true
		case "seconds":
			n, err := strconv.ParseUint(val, 10, 32)
			if err != nil || n == 0 {
				return errf(kw, "bad seconds", "%q", truncate(val, 40))
			}
			t.Seconds, sawSeconds = uint32(n), true
		case "unique_on":
			if kw != "detection_filter" {
				return errf(kw, "unique_on only for detection_filter", "")
			}
			if val != "src_port" && val != "dst_port" {
				return errf(kw, "bad unique_on", "%q (want src_port or dst_port)", truncate(val, 40))
			}
			t.UniqueOn = val
		default:
			return errf(kw, "unknown field", "%q", truncate(k, 40))
		}
	}
	if kw == "detection_filter" {
		t.Type = ThresholdDetectionFilter
	}
	if t.Type == 0 || t.Track == 0 || !sawCount || !sawSeconds {
		return errf(kw, "incomplete", "needs type (threshold only), track, count and seconds")
	}
	if t.Count == 0 && t.Type != ThresholdDetectionFilter {
		return errf(kw, "bad count", "count must be at least 1")
	}
	if kw == "threshold" {
		r.Threshold = t
	} else {
		r.DetectionFilter = t
	}
	return nil
}

var flagBits = map[byte]uint8{
	'F': TCPFin, 'S': TCPSyn, 'R': TCPRst, 'P': TCPPsh, 'A': TCPAck,
	'U': TCPUrg, 'E': TCPEce, 'C': TCPCwr,
	// Snort's reserved-bit names: 1 is CWR, 2 is ECE.
	'1': TCPCwr, '2': TCPEce,
}

// parseFlags parses flags:[mod]FLAGS[mod][,IGNORE].
func parseFlags(r *Rule, v string) *Error {
	const kw = "flags"
	if r.Flags != nil {
		return errf(kw, "repeated", "")
	}
	main, ignore, hasIgnore := strings.Cut(strings.TrimSpace(v), ",")
	f := &TCPFlags{Mod: FlagsExact}
	main = strings.TrimSpace(main)
	if main == "" {
		return errf(kw, "empty", "")
	}
	zero := false
	for i := 0; i < len(main); i++ {
		c := main[i]
		switch c {
		case '+', '*', '!':
			if f.Mod != FlagsExact {
				return errf(kw, "two modifiers", "%q", main)
			}
			f.Mod = map[byte]FlagsMod{'+': FlagsAll, '*': FlagsAny, '!': FlagsNot}[c]
		case '0':
			zero = true
		case ' ':
		default:
			bit, ok := flagBits[c]
			if !ok {
				return errf(kw, "unknown flag", "%q", string(c))
			}
			f.Flags |= bit
		}
	}
	if zero && f.Flags != 0 {
		return errf(kw, "0 with other flags", "%q", main)
	}
	if hasIgnore {
		for i := 0; i < len(ignore); i++ {
			c := ignore[i]
			if c == ' ' {
				continue
			}
			bit, ok := flagBits[c]
			if !ok {
				return errf(kw, "unknown flag", "%q in mask", string(c))
			}
			f.Ignore |= bit
		}
	}
	r.Flags = f
	return nil
}

// parseNumber reads a decimal, or 0x-prefixed hex, unsigned value.
func parseNumber(s string) (uint64, bool) {
	s = strings.TrimSpace(s)
	base := 10
	if strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X") {
		s, base = s[2:], 16
	}
	n, err := strconv.ParseUint(s, base, 64)
	return n, err == nil
}

// byteOpts holds the flags byte_test and byte_jump share.
func byteFlag(kw, f string, endian *Endian, base *NumBase, str *bool) (bool, *Error) {
	switch f {
	case "big":
		*endian = EndianBig
	case "little":
		*endian = EndianLittle
	case "string":
		*str = true
	case "hex":
		*base = NumHex
	case "dec":
		*base = NumDec
	case "oct":
		*base = NumOct
	case "dce":
		return true, unsupported(kw, "dce option", "DCERPC is not parsed")
	default:
		return false, nil
	}
	return true, nil
}

func (st *ruleState) byteTest(v string) *Error {
	const kw = "byte_test"
	parts := strings.Split(v, ",")
	if len(parts) < 4 {
		return errf(kw, "too few fields", "want bytes,operator,value,offset")
	}
	bt := &ByteTest{Endian: EndianBig}
	n, err := strconv.ParseUint(strings.TrimSpace(parts[0]), 10, 8)
	if err != nil {
		return errf(kw, "bad byte count", "%q", truncate(parts[0], 20))
	}
	op := strings.TrimSpace(parts[1])
	if strings.HasPrefix(op, "!") {
		bt.Negated = true
		op = op[1:]
		if op == "=" || op == "" {
			op = "="
		}
	}
	switch op {
	case "<":
		bt.Op = ByteLT
	case ">":
		bt.Op = ByteGT
	case "=":
		bt.Op = ByteEQ
	case "<=":
		bt.Op = ByteLE
	case ">=":
		bt.Op = ByteGE
	case "&":
		bt.Op = ByteAnd
	case "^":
		bt.Op = ByteXor
	default:
		return errf(kw, "bad operator", "%q", truncate(op, 20))
	}
	val := strings.TrimSpace(parts[2])
	if isAlpha(val) {
		return unsupported(kw, "byte_extract variables", val)
	}
	var ok bool
	if bt.Value, ok = parseNumber(val); !ok {
		return errf(kw, "bad value", "%q", truncate(val, 40))
	}
	off, e := parseInt32(kw, parts[3])
	if e != nil {
		return e
	}
	bt.Offset = off
	str := false
	for i := 4; i < len(parts); i++ {
		f := strings.TrimSpace(parts[i])
		if f == "relative" {
			bt.Relative = true
			continue
		}
		if strings.HasPrefix(f, "bitmask") {
			m, ok := parseNumber(strings.TrimSpace(strings.TrimPrefix(f, "bitmask")))
			if !ok || m == 0 || m > 0xffffffff {
				return errf(kw, "bad bitmask", "%q", truncate(f, 40))
			}
			bt.Bitmask = uint32(m)
			continue
		}
		known, e := byteFlag(kw, f, &bt.Endian, &bt.Base, &str)
		if e != nil {
			return e
		}
		if !known {
			return errf(kw, "unknown flag", "%q", truncate(f, 40))
		}
	}
	if err := checkByteCount(kw, n, str, &bt.Base); err != nil {
		return err
	}
	bt.NBytes = uint8(n)
	return st.add(kw, Match{Kind: MatchByteTest, ByteTest: bt})
}

// checkByteCount validates the read size: 1..8 bytes binary, 1..23 as a
// string (Suricata's limits); a base without "string" is an error.
func checkByteCount(kw string, n uint64, str bool, base *NumBase) *Error {
	if n == 0 && !str {
		return errf(kw, "bad byte count", "0 (allowed only with string: read all leading digits)")
	}
	if str {
		if *base == NumBinary {
			*base = NumDec
		}
		if n > 23 {
			return errf(kw, "bad byte count", "%d (string reads take at most 23)", n)
		}
		return nil
	}
	if *base != NumBinary {
		return errf(kw, "base without string", "hex, dec and oct need the string flag")
	}
	if n > 8 {
		return errf(kw, "bad byte count", "%d (binary reads take at most 8)", n)
	}
	return nil
}

func (st *ruleState) byteJump(v string) *Error {
	const kw = "byte_jump"
	parts := strings.Split(v, ",")
	if len(parts) < 2 {
		return errf(kw, "too few fields", "want bytes,offset")
	}
	bj := &ByteJump{Endian: EndianBig, Multiplier: 1}
	n, err := strconv.ParseUint(strings.TrimSpace(parts[0]), 10, 8)
	if err != nil {
		return errf(kw, "bad byte count", "%q", truncate(parts[0], 20))
	}
	off, e := parseInt32(kw, parts[1])
	if e != nil {
		return e
	}
	bj.Offset = off
	str := false
	for i := 2; i < len(parts); i++ {
		f := strings.TrimSpace(parts[i])
		name, arg, _ := strings.Cut(f, " ")
		arg = strings.TrimSpace(arg)
		switch name {
		case "relative":
			bj.Relative = true
		case "align":
			bj.Align = true
		case "from_beginning":
			bj.FromBeginning = true
		case "from_end":
			bj.FromEnd = true
		case "multiplier":
			m, err := strconv.ParseUint(arg, 10, 16)
			if err != nil || m == 0 {
				return errf(kw, "bad multiplier", "%q", truncate(arg, 20))
			}
			bj.Multiplier = uint32(m)
		case "post_offset":
			p, e := parseInt32(kw, arg)
			if e != nil {
				return e
			}
			bj.PostOffset = p
		case "bitmask":
			m, ok := parseNumber(arg)
			if !ok || m == 0 || m > 0xffffffff {
				return errf(kw, "bad bitmask", "%q", truncate(arg, 20))
			}
			bj.Bitmask = uint32(m)
		default:
			known, e := byteFlag(kw, f, &bj.Endian, &bj.Base, &str)
			if e != nil {
				return e
			}
			if !known {
				return errf(kw, "unknown flag", "%q", truncate(f, 40))
			}
		}
	}
	if bj.FromBeginning && bj.FromEnd {
		return errf(kw, "conflicting flags", "from_beginning and from_end")
	}
	if err := checkByteCount(kw, n, str, &bj.Base); err != nil {
		return err
	}
	bj.NBytes = uint8(n)
	return st.add(kw, Match{Kind: MatchByteJump, ByteJump: bj})
}
