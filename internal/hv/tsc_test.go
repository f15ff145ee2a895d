package hv

import (
	"strings"
	"testing"
)

const cpuinfo2 = `processor	: 0
vendor_id	: GenuineIntel
model name	: Intel(R) Xeon(R) CPU
cpu MHz		: 2400.000
flags		: fpu vme tsc constant_tsc nonstop_tsc vmx
bogomips	: 4800.00

processor	: 1
vendor_id	: GenuineIntel
cpu MHz		: 1200.000
flags		: fpu vme tsc
`

func TestParseTSCkHz(t *testing.T) {
	tests := []struct {
		desc string
		in   string
		want int
	}{
		{"invariant TSC", cpuinfo2, 2_400_000},
		{"fractional MHz", "cpu MHz : 2095.076\nflags : constant_tsc nonstop_tsc\n", 2_095_076},
		{"flags before MHz", "flags : nonstop_tsc constant_tsc\ncpu MHz : 3000.000\n", 3_000_000},
		{"only first CPU counts", strings.Replace(cpuinfo2, "constant_tsc nonstop_tsc", "", 1) + "flags : constant_tsc nonstop_tsc\n", 0},
		{"no constant_tsc", "cpu MHz : 2400\nflags : nonstop_tsc\n", 0},
		{"no nonstop_tsc", "cpu MHz : 2400\nflags : constant_tsc\n", 0},
		{"flag substring", "cpu MHz : 2400\nflags : constant_tsc_x nonstop_tscy\n", 0},
		{"no MHz", "flags : constant_tsc nonstop_tsc\n", 0},
		{"MHz not a number", "cpu MHz : fast\nflags : constant_tsc nonstop_tsc\n", 0},
		{"MHz too low", "cpu MHz : 99.9\nflags : constant_tsc nonstop_tsc\n", 0},
		{"MHz too high", "cpu MHz : 10000.1\nflags : constant_tsc nonstop_tsc\n", 0},
		{"MHz NaN", "cpu MHz : NaN\nflags : constant_tsc nonstop_tsc\n", 0},
		{"MHz Inf", "cpu MHz : +Inf\nflags : constant_tsc nonstop_tsc\n", 0},
		{"empty", "", 0},
	}
	for _, tc := range tests {
		if got := parseTSCkHz(strings.NewReader(tc.in)); got != tc.want {
			t.Errorf("%s: parseTSCkHz = %d, want %d", tc.desc, got, tc.want)
		}
	}
}

// FuzzParseTSCkHz: any /proc/cpuinfo text gives 0 or a rate in the sane range.
func FuzzParseTSCkHz(f *testing.F) {
	f.Add(cpuinfo2)
	f.Add("cpu MHz : 1e3\nflags : constant_tsc nonstop_tsc\n")
	f.Add("cpu MHz : 0x1p11\nflags : constant_tsc nonstop_tsc\n")
	f.Add("cpu MHz : nan\nflags : constant_tsc nonstop_tsc\n")
	f.Fuzz(func(t *testing.T, in string) {
		got := parseTSCkHz(strings.NewReader(in))
		if got != 0 && (got < 100_000 || got > 10_000_000) {
			t.Fatalf("parseTSCkHz = %d kHz", got)
		}
	})
}
