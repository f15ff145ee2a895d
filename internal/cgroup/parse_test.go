package cgroup

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseFlat(t *testing.T) {
	m, err := parseFlat("usage_usec 12\nnr_throttled 3\nthrottled_usec 18446744073709551615\n")
	if err != nil || m["usage_usec"] != 12 || m["nr_throttled"] != 3 || m["throttled_usec"] != 1<<64-1 || len(m) != 3 {
		t.Errorf("parseFlat = %v, %v", m, err)
	}
	if m, err := parseFlat(""); err != nil || len(m) != 0 {
		t.Errorf("empty: %v, %v", m, err)
	}
	for _, bad := range []string{
		"usage_usec\n", "usage_usec  1\n", "usage_usec -1\n", "usage_usec +1\n", "usage_usec 1x\n",
		"usage_usec 18446744073709551616\n", "Usage 1\n", "a 1\na 2\n", "a 1\n\nb 2\n", "a 1 2\n", "a 01\n",
	} {
		if _, err := parseFlat(bad); err == nil {
			t.Errorf("parseFlat(%q) accepted", bad)
		}
	}
	var many strings.Builder
	for i := range maxFlatLines + 1 {
		fmt.Fprintf(&many, "k%d 1\n", i)
	}
	if _, err := parseFlat(many.String()); err == nil {
		t.Error("too many lines accepted")
	}
}

func TestParseIOStatV2(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want IOStats
		ok   bool
	}{
		{"", IOStats{}, true},
		{"8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=5 dios=6\n", IOStats{ReadBytes: 1, WriteBytes: 2, ReadOps: 3, WriteOps: 4}, true},
		{"8:0 \n", IOStats{}, true},
		{"8:0  cost.vrate=100.00 cost.usage=3\n", IOStats{}, true},
		{"8:0 rbytes=1\n8:16 rbytes=2\n", IOStats{ReadBytes: 3}, true},
		{"8:0 rbytes=18446744073709551615\n8:16 rbytes=1\n", IOStats{}, false}, // overflow
		{"8:0 rbytes=-1\n", IOStats{}, false},
		{"8:0 rbytes\n", IOStats{}, false},
		{"8:0 rbytes=\n", IOStats{}, false},
		{"8:0 RBYTES=1\n", IOStats{}, false},
		{"sda rbytes=1\n", IOStats{}, false},
		{"8:99999999 rbytes=1\n", IOStats{}, false},
		{"8:0 rbytes=1\n\n", IOStats{}, false},
		{"8:0 =1\n", IOStats{}, false},
	} {
		got, err := parseIOStatV2(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("parseIOStatV2(%q) = %+v, %v; want %+v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestParseBlkioV1(t *testing.T) {
	in := "254:0 Read 4096\n254:0 Write 8192\n254:0 Sync 0\n254:0 Async 12288\n254:0 Discard 0\n254:0 Total 12288\n8:0 Read 1\n8:0 Write 2\nTotal 12291\n"
	if r, w, err := parseBlkioV1(in); err != nil || r != 4097 || w != 8194 {
		t.Errorf("parseBlkioV1 = %d, %d, %v", r, w, err)
	}
	if r, w, err := parseBlkioV1("Total 0\n"); err != nil || r != 0 || w != 0 {
		t.Errorf("empty = %d, %d, %v", r, w, err)
	}
	for _, bad := range []string{
		"254:0 Read\n", "254:0 Peek 1\n", "254:0 Read -1\n", "Total x\n", "x:0 Read 1\n",
		"254:0 Read 1 2\n", "254:0 Read 18446744073709551615\n8:0 Read 1\n", "254:0  Read 1\n",
	} {
		if _, _, err := parseBlkioV1(bad); err == nil {
			t.Errorf("parseBlkioV1(%q) accepted", bad)
		}
	}
}

func TestParseDeviceLists(t *testing.T) {
	d, err := parseIOMaxV2("8:16 rbps=2097152 wbps=max riops=max wiops=120\n254:0 rbps=max wbps=max riops=1 wiops=max\n")
	if err != nil || len(d) != 2 || d[0] != (device{8, 16}) || d[1] != (device{254, 0}) {
		t.Errorf("parseIOMaxV2 = %v, %v", d, err)
	}
	for _, bad := range []string{
		"8:16 rbps=1\n", "8:16 wbps=max rbps=max riops=max wiops=max\n", "8:16 rbps=x wbps=max riops=max wiops=max\n",
		"8 rbps=max wbps=max riops=max wiops=max\n", "8:16 rbps=max wbps=max riops=max wiops=max extra\n",
	} {
		if _, err := parseIOMaxV2(bad); err == nil {
			t.Errorf("parseIOMaxV2(%q) accepted", bad)
		}
	}
	d, err = parseDeviceValues("8:16 1048576\n254:0 42\n")
	if err != nil || len(d) != 2 || d[1] != (device{254, 0}) {
		t.Errorf("parseDeviceValues = %v, %v", d, err)
	}
	for _, bad := range []string{"8:16\n", "8:16 -1\n", "8:16 1 2\n", ":16 1\n", "4096:0 1\n"} {
		if _, err := parseDeviceValues(bad); err == nil {
			t.Errorf("parseDeviceValues(%q) accepted", bad)
		}
	}
}

// The fuzz targets check that the parsers never panic, stay within their
// line bound, and only accept what a re-print of their result explains.

func FuzzParseFlat(f *testing.F) {
	f.Add("usage_usec 5000123\nuser_usec 4000000\nnr_periods 50\nnr_throttled 20\nthrottled_usec 1500000\n")
	f.Add("nr_periods 0\nnr_throttled 0\nthrottled_time 0\n")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseFlat(s)
		if err != nil {
			return
		}
		n := 0
		if body := strings.TrimSuffix(s, "\n"); body != "" {
			n = strings.Count(body, "\n") + 1
		}
		if len(m) > maxFlatLines || len(m) != n {
			t.Fatalf("%d keys from %q", len(m), s)
		}
		for k, v := range m {
			if !strings.Contains("\n"+s, fmt.Sprintf("\n%s %d", k, v)) {
				t.Fatalf("key %s=%d not in %q", k, v, s)
			}
		}
	})
}

func FuzzParseIOStatV2(f *testing.F) {
	f.Add("254:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n253:0 \n8:0 rbytes=1  cost.vrate=100.00\n")
	f.Fuzz(func(t *testing.T, s string) {
		st, err := parseIOStatV2(s)
		if err != nil {
			return
		}
		if st != (IOStats{}) && !strings.Contains(s, "=") {
			t.Fatalf("counters %+v from %q", st, s)
		}
	})
}

func FuzzParseBlkioV1(f *testing.F) {
	f.Add("254:0 Read 4096\n254:0 Write 8192\n254:0 Sync 0\n254:0 Async 12288\n254:0 Discard 0\n254:0 Total 12288\nTotal 12288\n")
	f.Fuzz(func(t *testing.T, s string) {
		r, w, err := parseBlkioV1(s)
		if err != nil {
			return
		}
		if r != 0 && !strings.Contains(s, " Read ") || w != 0 && !strings.Contains(s, " Write ") {
			t.Fatalf("read %d write %d from %q", r, w, s)
		}
	})
}

func FuzzParseDeviceLists(f *testing.F) {
	f.Add("8:16 rbps=2097152 wbps=max riops=max wiops=120\n")
	f.Add("8:16 1048576\n254:0 42\n")
	f.Fuzz(func(t *testing.T, s string) {
		for _, parse := range []func(string) ([]device, error){parseIOMaxV2, parseDeviceValues} {
			d, err := parse(s)
			if err != nil {
				continue
			}
			if len(d) > maxDeviceLines {
				t.Fatalf("%d devices", len(d))
			}
			for _, x := range d {
				if !strings.Contains("\n"+s, "\n"+x.String()+" ") {
					t.Fatalf("device %v not in %q", x, s)
				}
			}
		}
	})
}
