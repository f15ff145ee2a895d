package console

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

func sanitize(chunks ...string) (string, int) {
	var s Sanitizer
	var out []byte
	for _, c := range chunks {
		out = s.Write(out, []byte(c))
	}
	return string(out), s.Dropped
}

func TestSanitizer(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []string
		want string
	}{
		{"plain", []string{"hello\r\n"}, "hello\r\n"},
		{"colours pass", []string{"\x1b[1;31mred\x1b[0m"}, "\x1b[1;31mred\x1b[0m"},
		{"cursor pass", []string{"\x1b[2J\x1b[H\x1b7\x1b8"}, "\x1b[2J\x1b[H\x1b7\x1b8"},
		{"osc52 BEL", []string{"a\x1b]52;c;ZXZpbA==\x07b"}, "ab"},
		{"osc52 ST", []string{"a\x1b]52;c;ZXZpbA==\x1b\\b"}, "ab"},
		{"osc52 split", []string{"a\x1b", "]52;c;ZX", "Zp\x1b", "\\b"}, "ab"},
		{"title", []string{"\x1b]0;pwned\x07x"}, "x"},
		{"dcs decrqss", []string{"\x1bP$qm\x1b\\x"}, "x"},
		{"apc", []string{"\x1b_foo\x1b\\x"}, "x"},
		{"title report", []string{"\x1b[21tx"}, "x"},
		{"window op split", []string{"\x1b[8;", "100;100tx"}, "x"},
		{"bracketed paste off", []string{"\x1b[?2004lx\x1b[?2004hy"}, "xy"},
		{"media copy", []string{"\x1b[5ix"}, "x"},
		{"c1 csi in utf8", []string{"a\u009b21tb"}, "a21tb"},
		{"c1 osc in utf8 split", []string{"a\xc2", "\x9d52;c;x\x07"}, "a52;c;x\x07"},
		{"raw 8-bit c1", []string{"a\x9b21t"}, "a\uFFFD21t"},
		{"invalid utf8", []string{"\xff"}, "\uFFFD"},
		{"utf8 split", []string{"caf\xc3", "\xa9"}, "café"},
		{"csi aborted by control", []string{"\x1b[1\nx"}, "\nx"},
		{"unterminated string ends", []string{"\x1b]" + string(bytes.Repeat([]byte("A"), maxStr+3))}, "AAA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := sanitize(tc.in...)
			if got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func FuzzSanitizer(f *testing.F) {
	f.Add([]byte("\x1b]52;c;ZXZpbA==\x07"), 3)
	f.Add([]byte("\x1b[?2004l\u009b\xff"), 1)
	f.Fuzz(func(t *testing.T, in []byte, split int) {
		var s Sanitizer
		var out []byte
		if split < 0 {
			split = -split
		}
		if split > len(in) {
			split = len(in)
		}
		out = s.Write(out, in[:split])
		out = s.Write(out, in[split:])
		if !utf8.Valid(out) {
			t.Fatalf("output not valid UTF-8: %q", out)
		}
		if bytes.Contains(out, []byte("\x1b]")) || bytes.Contains(out, []byte("\x1bP")) || bytes.Contains(out, []byte("\x1b_")) {
			t.Fatalf("string sequence passed: %q", out)
		}
		for _, r := range string(out) {
			if r >= 0x80 && r <= 0x9f {
				t.Fatalf("C1 control %U passed", r)
			}
		}
		if len(s.seq) > maxCSI+1 || len(s.utf) > 3 {
			t.Fatalf("state grew: seq %d utf %d", len(s.seq), len(s.utf))
		}
		// Same result in one piece.
		var s2 Sanitizer
		if one := s2.Write(nil, in); len(s.utf) == 0 && !bytes.Equal(one, out) {
			t.Fatalf("split at %d changed the result:\n%q\n%q", split, one, out)
		}
	})
}

func FuzzAppendJSONString(f *testing.F) {
	f.Add([]byte("a\"b\\c\n\r\t\x01<&>\u2028é\xff"))
	f.Fuzz(func(t *testing.T, in []byte) {
		got := appendJSONString(nil, in)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%q -> %s: %v", in, got, err)
		}
		var want string
		ref, _ := json.Marshal(string(in))
		json.Unmarshal(ref, &want)
		if back != want {
			t.Fatalf("%q: decodes to %q, json.Marshal's to %q", in, back, want)
		}
	})
}
