package vmcoreinfo

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// Bounds of Parse. The kernel's text fits one page (VMCOREINFO_BYTES), has
// about a hundred lines, names of at most a few dozen characters, and
// values no longer than a release string (64) or a build ID (40).
const (
	MaxText  = 16 << 10
	MaxLines = 4096
	MaxKey   = 128
	MaxValue = 256
)

// ErrNoOSRelease is returned by Parse for a text without OSRELEASE.
var ErrNoOSRelease = errors.New("vmcoreinfo: no OSRELEASE")

// Parse parses VMCOREINFO text: KEY=VALUE lines separated by '\n', ending
// at the first NUL byte or the end of text. Lines that are not well formed
// (no '=', a key or value too long or not printable ASCII, a value that is
// not a number where the key calls for one) are skipped and counted in
// Skipped; empty lines are ignored. A key given twice with different
// values is an error — the kernel never writes one twice, and either value
// could be the forged one — and so is a text without OSRELEASE, longer than
// MaxText, or with more than MaxLines lines.
func Parse(text []byte) (*Info, error) {
	if len(text) > MaxText {
		return nil, fmt.Errorf("vmcoreinfo: text of %d bytes, more than %d", len(text), MaxText)
	}
	if i := bytes.IndexByte(text, 0); i >= 0 {
		text = text[:i]
	}
	info := &Info{
		Symbols: map[string]uint64{},
		Numbers: map[string]int64{},
		Sizes:   map[string]uint64{},
		Offsets: map[string]uint64{},
		Lengths: map[string]uint64{},
		Values:  map[string]string{},
	}
	seen := map[string]string{}
	for n := 0; len(text) > 0; n++ { // each round consumes a line
		if n == MaxLines {
			return nil, fmt.Errorf("vmcoreinfo: more than %d lines", MaxLines)
		}
		line := text
		if i := bytes.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			text = nil
		}
		if len(line) == 0 {
			continue
		}
		key, value, ok := splitLine(line)
		if !ok {
			info.Skipped++
			continue
		}
		if old, dup := seen[key]; dup {
			if old != value {
				return nil, fmt.Errorf("vmcoreinfo: %s given twice, as %q and %q", key, old, value)
			}
			continue
		}
		if !info.set(key, value) {
			info.Skipped++
			continue
		}
		seen[key] = value
	}
	if info.OSRelease == "" {
		return nil, ErrNoOSRelease
	}
	return info, nil
}

// splitLine splits KEY=VALUE, checking lengths and characters.
func splitLine(line []byte) (key, value string, ok bool) {
	i := bytes.IndexByte(line, '=')
	if i <= 0 || i > MaxKey || len(line)-i-1 > MaxValue {
		return "", "", false
	}
	for _, c := range line {
		if c < 0x20 || c > 0x7e {
			return "", "", false
		}
	}
	return string(line[:i]), string(line[i+1:]), true
}

// set stores one line; it reports false for a malformed one.
func (info *Info) set(key, value string) bool {
	if prefix, name, ok := splitKey(key); ok {
		switch prefix {
		case "SYMBOL":
			return putHex(info.Symbols, name, value)
		case "NUMBER":
			v, ok := parseNumber(value)
			if ok {
				info.Numbers[name] = v
			}
			return ok
		case "SIZE":
			return putDec(info.Sizes, name, value)
		case "OFFSET":
			return putDec(info.Offsets, name, value)
		case "LENGTH":
			return putDec(info.Lengths, name, value)
		}
		info.Values[key] = value // a PREFIX(name) this package does not know
		return true
	}
	if !plainKey(key) || value == "" {
		return false
	}
	switch key {
	case "OSRELEASE":
		info.OSRelease = value
	case "BUILD-ID":
		if !isHex(value) {
			return false
		}
		info.BuildID = value
	case "PAGESIZE":
		v, err := strconv.ParseUint(value, 10, 64)
		if err != nil {
			return false
		}
		info.PageSize = v
	case "KERNELOFFSET":
		if !isHex(value) || len(value) > 16 {
			return false
		}
		info.kernelOffset, _ = strconv.ParseUint(value, 16, 64)
	}
	info.Values[key] = value
	return true
}

// splitKey splits "PREFIX(name)" with PREFIX in [A-Z_]+ and name in
// [A-Za-z0-9_.]+.
func splitKey(key string) (prefix, name string, ok bool) {
	open := -1
	for i := 0; i < len(key); i++ {
		if key[i] == '(' {
			open = i
			break
		}
	}
	if open <= 0 || key[len(key)-1] != ')' || open+1 >= len(key)-1 {
		return "", "", false
	}
	prefix, name = key[:open], key[open+1:len(key)-1]
	for _, c := range []byte(prefix) {
		if !(c >= 'A' && c <= 'Z' || c == '_') {
			return "", "", false
		}
	}
	for _, c := range []byte(name) {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.') {
			return "", "", false
		}
	}
	return prefix, name, true
}

// plainKey accepts [A-Z0-9_-]+ ("OSRELEASE", "BUILD-ID").
func plainKey(key string) bool {
	for _, c := range []byte(key) {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return key != ""
}

func isHex(s string) bool {
	for _, c := range []byte(s) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return s != ""
}

// putHex stores a SYMBOL value: hex without 0x, as the kernel prints %lx.
func putHex(m map[string]uint64, name, value string) bool {
	if !isHex(value) || len(value) > 16 {
		return false
	}
	v, err := strconv.ParseUint(value, 16, 64)
	if err != nil {
		return false
	}
	m[name] = v
	return true
}

// putDec stores an unsigned decimal value (%lu).
func putDec(m map[string]uint64, name, value string) bool {
	v, err := strconv.ParseUint(value, 10, 64)
	if err != nil {
		return false
	}
	m[name] = v
	return true
}

// parseNumber reads a NUMBER value: signed decimal (%ld), or 0x-prefixed
// hex, which some architectures print, kept as its bit pattern.
func parseNumber(value string) (int64, bool) {
	if len(value) > 2 && value[0] == '0' && (value[1] == 'x' || value[1] == 'X') {
		if !isHex(value[2:]) || len(value) > 18 {
			return 0, false
		}
		v, err := strconv.ParseUint(value[2:], 16, 64)
		return int64(v), err == nil
	}
	v, err := strconv.ParseInt(value, 10, 64)
	return v, err == nil
}
