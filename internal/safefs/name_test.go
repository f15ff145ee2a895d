package safefs

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"a/b/c", true},
		{"...", true},
		{".hidden", true},
		{"a..b", true},
		{strings.Repeat("x", maxComponentLen), true},
		{"", false},
		{"/etc/shadow", false},
		{"/", false},
		{"..", false},
		{".", false},
		{"../x", false},
		{"a/../../x", false},
		{"a/..", false},
		{"./a", false},
		{"a/./b", false},
		{"a//b", false},
		{"a/", false},
		{"a\x00b", false},
		{strings.Repeat("x", maxComponentLen+1), false},
		{strings.Repeat("a/", maxNameLen/2+1) + "a", false},
	}
	for _, tt := range tests {
		err := checkName(tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("checkName(%.40q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidName) {
			t.Errorf("checkName(%.40q) = %v, not ErrInvalidName", tt.name, err)
		}
	}
}

func TestSplitName(t *testing.T) {
	tests := []struct{ name, dir, base string }{
		{"a", "", "a"},
		{"a/b", "a", "b"},
		{"a/b/c", "a/b", "c"},
	}
	for _, tt := range tests {
		if dir, base := splitName(tt.name); dir != tt.dir || base != tt.base {
			t.Errorf("splitName(%q) = %q, %q; want %q, %q", tt.name, dir, base, tt.dir, tt.base)
		}
	}
}
