package policy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Event kinds the daemon writes (docs/attestation.md), by PCR.
const (
	KindBulwarkBinary   = "bulwark-binary"   // PCR 11
	KindQEMUBinary      = "qemu-binary"      // PCR 11
	KindQEMUFirmware    = "qemu-firmware"    // PCR 11
	KindSeccompFilter   = "seccomp-filter"   // PCR 11
	KindHardeningConfig = "hardening-config" // PCR 11
	KindVMDefinition    = "vm-definition"    // PCR 12
	KindVMCmdline       = "vm-cmdline"       // PCR 12
	KindVMDisk          = "vm-disk"          // PCR 12
	KindVMDiskContent   = "vm-disk-content"  // PCR 12
	KindVMKernel        = "vm-kernel"        // PCR 12
	KindVMInitrd        = "vm-initrd"        // PCR 12
	KindRuntimeMismatch = "runtime-text-mismatch"
)

// Limits of ParseEventData. The daemon's writer keeps event data under
// 1 KiB; a parsed log may carry up to 1 MiB per event, which is refused
// here rather than scanned.
const (
	MaxEventData   = 4 << 10
	MaxEventFields = 32
)

// Errors ParseEventData wraps.
var (
	// ErrUnknownKind: the first word is not a kind this package knows for
	// that PCR.
	ErrUnknownKind = errors.New("unknown event kind")
	// ErrEventSyntax: the data does not follow its kind's format.
	ErrEventSyntax = errors.New("malformed event data")
)

// Field is one key=value of event data. Quoted values are decoded
// (strconv.Unquote); the hardening-config string has the empty key.
type Field struct {
	Key   string
	Value string
}

// EventInfo is parsed event data.
type EventInfo struct {
	Kind   string
	Fields []Field
	// Truncated is set when the writer cut an overlong value or line (to
	// 900 bytes and "..."): the fields before the cut are kept, the one it
	// cut is absent.
	Truncated bool
}

// Get returns the value of key, "" if absent.
func (e *EventInfo) Get(key string) string {
	v, _ := e.Lookup(key)
	return v
}

// Lookup returns the value of key and whether it is present.
func (e *EventInfo) Lookup(key string) (string, bool) {
	for _, f := range e.Fields {
		if f.Key == key {
			return f.Value, true
		}
	}
	return "", false
}

// Value types of a field.
const (
	tQuoted  = 'q' // a Go double-quoted string (measure.quote)
	tUint    = 'u' // decimal, no sign, no leading zero
	tHex     = 'x' // 0x and lower-case hex digits, at most 16
	tName    = 'n' // a component name (validComponentName)
	tBool    = 'b' // true or false
	tLiteral = 'l' // exactly fieldSpec.lit
)

type fieldSpec struct {
	key      string
	typ      byte
	lit      string
	optional bool
}

type kindSpec struct {
	pcr uint32
	// positional: the data is the kind, a space and one quoted string.
	positional bool
	fields     []fieldSpec
	// diskTail: the fields after the fixed ones are vm-disk's identity
	// (diskIdentityTail, then diskIdentityDone). A flag rather than a
	// function value keeps the state on the stack.
	diskTail bool
}

type tailState struct {
	step   int // vm-disk: 0 before path/volume, 1 before ro, 2 after ro
	volume bool
	layers int
}

var (
	vmField    = fieldSpec{key: "vm", typ: tQuoted}
	sizeField  = fieldSpec{key: "size", typ: tUint}
	bootFields = []fieldSpec{vmField, sizeField, {key: "file", typ: tQuoted}}
	binFields  = []fieldSpec{{key: "path", typ: tQuoted}, sizeField}
)

var kindSpecs = map[string]*kindSpec{
	KindBulwarkBinary:   {pcr: 11, fields: binFields},
	KindQEMUBinary:      {pcr: 11, fields: binFields},
	KindQEMUFirmware:    {pcr: 11, fields: []fieldSpec{{key: "name", typ: tName}, {key: "path", typ: tQuoted}, sizeField}},
	KindSeccompFilter:   {pcr: 11, fields: []fieldSpec{{key: "name", typ: tName}, sizeField}},
	KindHardeningConfig: {pcr: 11, positional: true},
	KindVMDefinition:    {pcr: 12, fields: []fieldSpec{vmField, {key: "digest-of", typ: tLiteral, lit: "canonical-json"}}},
	KindVMCmdline:       {pcr: 12, fields: []fieldSpec{vmField, {key: "cmdline", typ: tQuoted}}},
	KindVMDisk: {pcr: 12, fields: []fieldSpec{vmField, {key: "index", typ: tUint}, {key: "digest-of", typ: tLiteral, lit: "identity"}},
		diskTail: true},
	KindVMDiskContent: {pcr: 12, fields: []fieldSpec{vmField, {key: "index", typ: tUint}, {key: "layer", typ: tUint},
		{key: "digest-of", typ: tLiteral, lit: "content"}}},
	KindVMKernel: {pcr: 12, fields: bootFields},
	KindVMInitrd: {pcr: 12, fields: bootFields},
	KindRuntimeMismatch: {pcr: 13, fields: []fieldSpec{{key: "process", typ: tName}, {key: "vm", typ: tQuoted, optional: true},
		{key: "pid", typ: tUint}, {key: "binary", typ: tQuoted}, {key: "first_offset", typ: tHex}, {key: "count", typ: tUint}}},
}

// diskIdentityTail accepts `path="..." ro=BOOL` or `volume="..." ro=BOOL`
// followed by layer0=..., layer1=..., in order (measure.BeginLaunch).
func diskIdentityTail(st *tailState, key, val string, quoted bool) error {
	switch {
	case st.step == 0 && (key == "path" || key == "volume"):
		if !quoted {
			return fmt.Errorf("%s must be quoted", key)
		}
		st.volume = key == "volume"
	case st.step == 1 && key == "ro":
		if err := checkValue(tBool, "", val, quoted); err != nil {
			return fmt.Errorf("ro: %w", err)
		}
	case st.step == 2 && st.volume && key == "layer"+strconv.Itoa(st.layers):
		if quoted || val == "" {
			return fmt.Errorf("%s must be a bare value", key)
		}
		st.layers++
		return nil
	default:
		return fmt.Errorf("unexpected field %q", clip(key, 40))
	}
	st.step++
	return nil
}

func diskIdentityDone(st *tailState) error {
	if st.step < 2 {
		return errors.New("incomplete disk identity (path or volume, then ro)")
	}
	return nil
}

// ParseEventData parses the data of an event in pcr. It is strict: the
// kind must be one this package knows for that PCR, fields come in the
// documented order with no others, separated by single spaces; quoted
// values are Go string literals, decoded. Raw control bytes and invalid
// UTF-8 are refused (the writer quotes them), so a value cannot smuggle a
// second field or line. Errors wrap ErrUnknownKind or ErrEventSyntax.
func ParseEventData(pcr uint32, data []byte) (EventInfo, error) {
	return parseEventData(pcr, data, nil)
}

// parseEventData is ParseEventData appending the fields to buf[:0], so
// that Evaluate reuses one buffer for all events.
func parseEventData(pcr uint32, data []byte, buf []Field) (EventInfo, error) {
	if len(data) > MaxEventData {
		return EventInfo{}, fmt.Errorf("%w: %d bytes (at most %d)", ErrEventSyntax, len(data), MaxEventData)
	}
	ascii := true
	for _, c := range data {
		if c < 0x20 || c == 0x7f {
			return EventInfo{}, fmt.Errorf("%w: control byte 0x%02x", ErrEventSyntax, c)
		}
		ascii = ascii && c < 0x80
	}
	if !ascii && !utf8.Valid(data) {
		return EventInfo{}, fmt.Errorf("%w: not UTF-8", ErrEventSyntax)
	}
	s := string(data)
	kind, rest, _ := strings.Cut(s, " ")
	spec := kindSpecs[kind]
	if spec == nil {
		return EventInfo{}, fmt.Errorf("%w %s in PCR %d", ErrUnknownKind, strconv.Quote(clip(kind, 40)), pcr)
	}
	if spec.pcr != pcr {
		return EventInfo{}, fmt.Errorf("%w: %s belongs in PCR %d, not %d", ErrUnknownKind, kind, spec.pcr, pcr)
	}
	info, err := parseFields(spec, kind, s[len(kind):], false, buf)
	if err == nil {
		return info, nil
	}
	// measure.trim cuts a long value (cmdline, file) or a whole vm-disk
	// line to 900 bytes on a UTF-8 boundary and appends "...": the cut is
	// in the last field and the data is at least 899 bytes.
	if n := len(s); n >= 899 && strings.HasSuffix(s, "...") && len(rest) > 0 {
		if ti, terr := parseFields(spec, kind, s[len(kind):n-3], true, buf); terr == nil {
			return ti, nil
		}
	}
	return EventInfo{}, fmt.Errorf("%w: %s: %v", ErrEventSyntax, kind, err)
}

// parseFields reads the items after the kind: s is empty or starts with a
// space. Fields are appended to buf (nil: a new slice). When truncated,
// the item that reaches the cut is dropped (it may be cut short, even when
// it parses) and absent fields are not errors.
func parseFields(spec *kindSpec, kind, s string, truncated bool, buf []Field) (EventInfo, error) {
	info := EventInfo{Kind: kind, Truncated: truncated}
	if spec.positional {
		if truncated {
			return info, errors.New("cannot be truncated")
		}
		if len(s) < 2 || s[0] != ' ' || s[1] != '"' {
			return info, errors.New("want one quoted string")
		}
		v, err := strconv.Unquote(s[1:])
		if err != nil {
			return info, errors.New("want one quoted string")
		}
		info.Fields = append(buf[:0], Field{Value: v})
		return info, nil
	}
	if buf == nil {
		buf = make([]Field, 0, len(spec.fields)+2)
	}
	info.Fields = buf[:0]
	var st tailState
	j := 0 // next fixed field
	for len(s) > 0 {
		if len(info.Fields) == MaxEventFields {
			return info, fmt.Errorf("more than %d fields", MaxEventFields)
		}
		if s[0] != ' ' || len(s) == 1 {
			if truncated {
				return info, nil
			}
			return info, errors.New("fields must be separated by single spaces")
		}
		it, rest, err := nextItem(s[1:])
		if truncated && (err != nil || rest == "") {
			return info, nil // the item at the cut
		}
		if err != nil {
			return info, err
		}
		s = rest
		for j < len(spec.fields) && spec.fields[j].optional && spec.fields[j].key != it.key {
			j++
		}
		switch {
		case j < len(spec.fields):
			f := &spec.fields[j]
			if f.key != it.key {
				return info, fmt.Errorf("want field %q, found %q", f.key, clip(it.key, 40))
			}
			if err := checkValue(f.typ, f.lit, it.val, it.quoted); err != nil {
				return info, fmt.Errorf("%s: %w", f.key, err)
			}
			j++
		case spec.diskTail:
			if err := diskIdentityTail(&st, it.key, it.val, it.quoted); err != nil {
				return info, err
			}
		default:
			return info, fmt.Errorf("unexpected field %q", clip(it.key, 40))
		}
		info.Fields = append(info.Fields, Field{Key: it.key, Value: it.val})
	}
	if truncated {
		return info, errors.New("no cut field")
	}
	for ; j < len(spec.fields); j++ {
		if !spec.fields[j].optional {
			return info, fmt.Errorf("missing field %q", spec.fields[j].key)
		}
	}
	if spec.diskTail {
		if err := diskIdentityDone(&st); err != nil {
			return info, err
		}
	}
	return info, nil
}

type rawItem struct {
	key, val string
	quoted   bool
}

// nextItem reads key=value at the start of s: the key is lower-case
// letters, digits, '-' and '_'; the value a Go quoted string or a bare run
// of printable ASCII without spaces, quotes or backslashes.
func nextItem(s string) (rawItem, string, error) {
	i := 0
	for i < len(s) && (('a' <= s[i] && s[i] <= 'z') || ('0' <= s[i] && s[i] <= '9') || s[i] == '-' || s[i] == '_') {
		i++
	}
	if i == 0 || i > 64 || i == len(s) || s[i] != '=' {
		return rawItem{}, "", errors.New("want key=value")
	}
	it := rawItem{key: s[:i]}
	s = s[i+1:]
	if len(s) > 0 && s[0] == '"' {
		// Fast path: no escapes, so the value is the bytes between the
		// quotes (ParseEventData has refused control bytes and invalid
		// UTF-8, which is all Unquote would check there).
		for k := 1; k < len(s) && s[k] != '\\'; k++ {
			if s[k] == '"' {
				it.val, it.quoted = s[1:k], true
				return it, s[k+1:], nil
			}
		}
		q, err := strconv.QuotedPrefix(s)
		if err != nil || q[0] != '"' {
			return rawItem{}, "", fmt.Errorf("%s: bad quoted string", it.key)
		}
		v, err := strconv.Unquote(q)
		if err != nil {
			return rawItem{}, "", fmt.Errorf("%s: bad quoted string", it.key)
		}
		it.val, it.quoted = v, true
		return it, s[len(q):], nil
	}
	j := 0
	for j < len(s) && s[j] > ' ' && s[j] < 0x7f && s[j] != '"' && s[j] != '\\' {
		j++
	}
	if j < len(s) && s[j] != ' ' {
		return rawItem{}, "", fmt.Errorf("%s: bad byte in a bare value", it.key)
	}
	it.val = s[:j]
	return it, s[j:], nil
}

// checkValue checks a field's value against its type.
func checkValue(typ byte, lit, v string, quoted bool) error {
	if typ == tQuoted {
		if !quoted {
			return errors.New("must be quoted")
		}
		return nil
	}
	if quoted {
		return errors.New("must not be quoted")
	}
	ok := false
	switch typ {
	case tUint:
		ok = len(v) > 0 && len(v) <= 19 && (v == "0" || v[0] != '0') && allBytes(v, func(c byte) bool { return '0' <= c && c <= '9' })
	case tHex:
		ok = len(v) > 2 && len(v) <= 18 && v[:2] == "0x" && allBytes(v[2:], func(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' })
	case tName:
		ok = validComponentName(v)
	case tBool:
		ok = v == "true" || v == "false"
	case tLiteral:
		ok = v == lit
	}
	if !ok {
		return fmt.Errorf("bad value %s", strconv.Quote(clip(v, 40)))
	}
	return nil
}

func allBytes(s string, ok func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}
