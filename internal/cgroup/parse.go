package cgroup

import (
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// Parsers of the kernel's usage and limit files. The kernel writes them,
// but they are parsed as strictly as guest input: every line must have
// the documented shape, numbers must fit in 64 bits, sums must not
// overflow, and the line count is bounded (the file size already is, by
// readFile).

// Bounds on the files parsed here.
const (
	maxFlatLines   = 256  // cpu.stat, cpuacct files: about ten lines today
	maxDeviceLines = 8192 // io.stat, io.max, blkio files: a few lines per block device
)

var errTooManyLines = errors.New("too many lines")

// lines splits s into its non-empty lines, at most max of them.
func lines(s string, max int) ([]string, error) {
	out := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	if len(out) == 1 && out[0] == "" {
		return nil, nil
	}
	if len(out) > max {
		return nil, fmt.Errorf("%w (%d, at most %d)", errTooManyLines, len(out), max)
	}
	for i, l := range out {
		if l == "" {
			return nil, fmt.Errorf("line %d: empty", i+1)
		}
	}
	return out, nil
}

// validKey accepts the names of flat-keyed and nested-keyed fields:
// [a-z0-9_.], 1 to 64 bytes.
func validKey(k string) bool {
	if k == "" || len(k) > 64 {
		return false
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// parseUint accepts decimal digits only (no sign, no spaces, no leading
// zero), as the kernel prints them.
func parseUint(s string) (uint64, error) {
	if s == "" || len(s) > 20 || strings.TrimLeft(s, "0123456789") != "" || len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("not a number: %q", s)
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("not a 64-bit number: %q", s)
	}
	return v, nil
}

// parseFlat parses a flat-keyed file ("KEY VALUE" lines, single space,
// unique keys: cpu.stat in v1 and v2) into a map.
func parseFlat(s string) (map[string]uint64, error) {
	ls, err := lines(s, maxFlatLines)
	if err != nil {
		return nil, err
	}
	out := make(map[string]uint64, len(ls))
	for i, l := range ls {
		k, v, ok := strings.Cut(l, " ")
		if !ok || !validKey(k) {
			return nil, fmt.Errorf("line %d: not \"key value\": %q", i+1, l)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("line %d: key %s repeated", i+1, k)
		}
		n, err := parseUint(v)
		if err != nil {
			return nil, fmt.Errorf("line %d: key %s: %w", i+1, k, err)
		}
		out[k] = n
	}
	return out, nil
}

// device is a block device number.
type device struct{ major, minor uint32 }

func (d device) String() string { return fmt.Sprintf("%d:%d", d.major, d.minor) }

// parseDevice parses "MAJ:MIN" within the kernel's dev_t ranges.
func parseDevice(s string) (device, error) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return device{}, fmt.Errorf("not a device MAJ:MIN: %q", s)
	}
	maj, err1 := parseUint(a)
	min, err2 := parseUint(b)
	if err1 != nil || err2 != nil || maj > maxDevMajor || min > maxDevMinor {
		return device{}, fmt.Errorf("not a device MAJ:MIN: %q", s)
	}
	return device{uint32(maj), uint32(min)}, nil
}

// add64 adds b to *a, failing on overflow.
func add64(a *uint64, b uint64) error {
	sum, carry := bits.Add64(*a, b, 0)
	if carry != 0 {
		return errors.New("sum overflows 64 bits")
	}
	*a = sum
	return nil
}

// parseIOStatV2 sums the rbytes, wbytes, rios and wios fields of v2
// io.stat over all devices. Lines are "MAJ:MIN KEY=VALUE...", possibly
// with no field; other keys (dbytes, dios, cost.vrate, ...) must be
// KEY=VALUE and are skipped.
func parseIOStatV2(s string) (IOStats, error) {
	ls, err := lines(s, maxDeviceLines)
	if err != nil {
		return IOStats{}, err
	}
	var st IOStats
	for i, l := range ls {
		// Fields, not Split: the kernel prints "MAJ:MIN " with no field
		// when all counters are zero, and two spaces before cost.* fields
		// then.
		fields := strings.Fields(l)
		if len(fields) < 1 || len(fields) > 64 {
			return IOStats{}, fmt.Errorf("line %d: not \"MAJ:MIN KEY=VALUE...\": %q", i+1, l)
		}
		if _, err := parseDevice(fields[0]); err != nil {
			return IOStats{}, fmt.Errorf("line %d: %w", i+1, err)
		}
		for _, f := range fields[1:] {
			k, v, ok := strings.Cut(f, "=")
			if !ok || !validKey(k) || v == "" {
				return IOStats{}, fmt.Errorf("line %d: bad field %q", i+1, f)
			}
			var dst *uint64
			switch k {
			case "rbytes":
				dst = &st.ReadBytes
			case "wbytes":
				dst = &st.WriteBytes
			case "rios":
				dst = &st.ReadOps
			case "wios":
				dst = &st.WriteOps
			default:
				continue
			}
			n, err := parseUint(v)
			if err == nil {
				err = add64(dst, n)
			}
			if err != nil {
				return IOStats{}, fmt.Errorf("line %d: %s: %w", i+1, k, err)
			}
		}
	}
	return st, nil
}

// parseBlkioV1 sums the Read and Write lines of a v1
// blkio.throttle.io_service_bytes_recursive or io_serviced_recursive file:
// "MAJ:MIN OP VALUE" lines (OP one of Read, Write, Sync, Async, Discard,
// Total) and a last "Total VALUE" line.
func parseBlkioV1(s string) (read, write uint64, err error) {
	ls, err := lines(s, maxDeviceLines)
	if err != nil {
		return 0, 0, err
	}
	for i, l := range ls {
		f := strings.Split(l, " ")
		if len(f) == 2 && f[0] == "Total" {
			if _, err := parseUint(f[1]); err != nil {
				return 0, 0, fmt.Errorf("line %d: %w", i+1, err)
			}
			continue
		}
		if len(f) != 3 {
			return 0, 0, fmt.Errorf("line %d: not \"MAJ:MIN OP VALUE\": %q", i+1, l)
		}
		if _, err := parseDevice(f[0]); err != nil {
			return 0, 0, fmt.Errorf("line %d: %w", i+1, err)
		}
		n, err := parseUint(f[2])
		if err != nil {
			return 0, 0, fmt.Errorf("line %d: %w", i+1, err)
		}
		switch f[1] {
		case "Read":
			err = add64(&read, n)
		case "Write":
			err = add64(&write, n)
		case "Sync", "Async", "Discard", "Total":
		default:
			return 0, 0, fmt.Errorf("line %d: unknown operation %q", i+1, f[1])
		}
		if err != nil {
			return 0, 0, fmt.Errorf("line %d: %w", i+1, err)
		}
	}
	return read, write, nil
}

// parseIOMaxV2 returns the devices listed in v2 io.max: lines "MAJ:MIN
// rbps=V wbps=V riops=V wiops=V", each V a number or "max".
func parseIOMaxV2(s string) ([]device, error) {
	ls, err := lines(s, maxDeviceLines)
	if err != nil {
		return nil, err
	}
	var out []device
	for i, l := range ls {
		f := strings.Split(l, " ")
		if len(f) != 5 {
			return nil, fmt.Errorf("line %d: not \"MAJ:MIN rbps=V wbps=V riops=V wiops=V\": %q", i+1, l)
		}
		d, err := parseDevice(f[0])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		for j, key := range []string{"rbps", "wbps", "riops", "wiops"} {
			v, ok := strings.CutPrefix(f[j+1], key+"=")
			if !ok {
				return nil, fmt.Errorf("line %d: field %d is not %s=: %q", i+1, j+2, key, f[j+1])
			}
			if v != "max" {
				if _, err := parseUint(v); err != nil {
					return nil, fmt.Errorf("line %d: %s: %w", i+1, key, err)
				}
			}
		}
		out = append(out, d)
	}
	return out, nil
}

// parseDeviceValues returns the devices listed in a v1
// blkio.throttle.*_device file: "MAJ:MIN VALUE" lines.
func parseDeviceValues(s string) ([]device, error) {
	ls, err := lines(s, maxDeviceLines)
	if err != nil {
		return nil, err
	}
	var out []device
	for i, l := range ls {
		a, b, ok := strings.Cut(l, " ")
		if !ok {
			return nil, fmt.Errorf("line %d: not \"MAJ:MIN VALUE\": %q", i+1, l)
		}
		d, err := parseDevice(a)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		if _, err := parseUint(b); err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		out = append(out, d)
	}
	return out, nil
}
