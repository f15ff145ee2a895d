package daemon

import (
	"testing"

	"github.com/bulwark-project/bulwark/internal/tpm"
)

func TestParseTPM(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want tpm.Config
		bad  bool
	}{
		{"", tpm.Config{None: true}, false},
		{"none", tpm.Config{None: true}, false},
		{"device", tpm.Config{}, false},
		{"device:/dev/tpm0", tpm.Config{Device: "/dev/tpm0"}, false},
		{"swtpm:/run/swtpm.sock", tpm.Config{Socket: "/run/swtpm.sock"}, false},
		{"swtpm", tpm.Config{}, true},
		{"hardware", tpm.Config{}, true},
	} {
		got, err := ParseTPM(tt.in)
		if (err != nil) != tt.bad || (!tt.bad && got != tt.want) {
			t.Errorf("ParseTPM(%q) = %+v, %v", tt.in, got, err)
		}
	}
}
