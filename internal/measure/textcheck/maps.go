package textcheck

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// Limits on /proc/PID/maps. A compromised process chooses how many mappings
// it has and what its files are called, so the text is bounded before it is
// parsed and every line is parsed strictly.
const (
	// MaxMapsBytes bounds the maps text read for one process. The kernel's
	// default vm.max_map_count (65530) at ~100 bytes a line is ~6.5 MB;
	// a process near that limit is refused rather than half-checked.
	MaxMapsBytes = 4 << 20
	// MaxMappings bounds the number of lines parsed.
	MaxMappings = 65536
	// maxLine bounds one line: the fixed fields, PATH_MAX and " (deleted)".
	maxLine = 4096 + 256
)

// ErrMapsTooLarge is returned (wrapped) when a process's maps exceed
// MaxMapsBytes or MaxMappings.
var ErrMapsTooLarge = errors.New("maps over the limit")

// Mapping is one line of /proc/PID/maps.
type Mapping struct {
	Start, End uint64 // addresses, End exclusive
	Perms      string // "r-xp": read, write, execute, private/shared
	Offset     uint64 // file offset of Start
	// DevMajor, DevMinor and Inode identify the mapped file as the kernel
	// sees it; all zero for anonymous memory.
	DevMajor, DevMinor uint32
	Inode              uint64
	// Name is the path or pseudo-name ("[vdso]", "/memfd:x (deleted)"). For
	// a file it is only a hint: the process chose where its files live.
	Name string
}

// Exec reports whether the mapping is executable.
func (m Mapping) Exec() bool { return m.Perms[2] == 'x' }

// Anonymous reports whether no file backs the mapping.
func (m Mapping) Anonymous() bool { return m.Inode == 0 && m.DevMajor == 0 && m.DevMinor == 0 }

// Size is the mapping's length in bytes.
func (m Mapping) Size() uint64 { return m.End - m.Start }

// ParseMaps parses the text of /proc/PID/maps. It fails on the first line
// that is not in the kernel's format, on mappings out of address order, and
// past MaxMappings lines or MaxMapsBytes bytes.
func ParseMaps(b []byte) ([]Mapping, error) {
	if len(b) > MaxMapsBytes {
		return nil, fmt.Errorf("%d bytes: %w (at most %d)", len(b), ErrMapsTooLarge, MaxMapsBytes)
	}
	var out []Mapping
	for n := 1; len(b) > 0; n++ {
		if n > MaxMappings {
			return nil, fmt.Errorf("%w: more than %d mappings", ErrMapsTooLarge, MaxMappings)
		}
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return nil, fmt.Errorf("maps line %d: no newline at the end", n)
		}
		line := b[:i]
		b = b[i+1:]
		if len(line) > maxLine {
			return nil, fmt.Errorf("maps line %d: %d bytes, at most %d", n, len(line), maxLine)
		}
		m, err := parseMapsLine(line)
		if err != nil {
			return nil, fmt.Errorf("maps line %d: %w", n, err)
		}
		if len(out) > 0 && m.Start < out[len(out)-1].End {
			return nil, fmt.Errorf("maps line %d: %#x is below the previous mapping's end %#x", n, m.Start, out[len(out)-1].End)
		}
		out = append(out, m)
	}
	return out, nil
}

// parseMapsLine parses "START-END PERMS OFFSET MAJ:MIN INODE [NAME]" as
// the kernel's show_map_vma prints it: hex numbers except the decimal
// inode, single spaces, then padding before the name.
func parseMapsLine(l []byte) (Mapping, error) {
	var m Mapping
	field := func(sep byte) ([]byte, error) {
		i := bytes.IndexByte(l, sep)
		if i <= 0 {
			return nil, fmt.Errorf("missing field before %q", sep)
		}
		f := l[:i]
		l = l[i+1:]
		return f, nil
	}
	var err error
	hex := func(f []byte, bits int) (uint64, error) {
		if len(f) > bits/4 {
			return 0, fmt.Errorf("%q: too long", f)
		}
		return strconv.ParseUint(string(f), 16, bits)
	}
	var f []byte
	if f, err = field('-'); err != nil {
		return m, err
	}
	if m.Start, err = hex(f, 64); err != nil {
		return m, err
	}
	if f, err = field(' '); err != nil {
		return m, err
	}
	if m.End, err = hex(f, 64); err != nil {
		return m, err
	}
	if m.End <= m.Start {
		return m, fmt.Errorf("empty or inverted range %#x-%#x", m.Start, m.End)
	}
	if f, err = field(' '); err != nil {
		return m, err
	}
	if len(f) != 4 || (f[0] != 'r' && f[0] != '-') || (f[1] != 'w' && f[1] != '-') ||
		(f[2] != 'x' && f[2] != '-') || (f[3] != 'p' && f[3] != 's') {
		return m, fmt.Errorf("permissions %q", f)
	}
	m.Perms = string(f)
	if f, err = field(' '); err != nil {
		return m, err
	}
	if m.Offset, err = hex(f, 64); err != nil {
		return m, fmt.Errorf("offset: %w", err)
	}
	if f, err = field(':'); err != nil {
		return m, err
	}
	maj, err := hex(f, 32)
	if err != nil {
		return m, fmt.Errorf("device major: %w", err)
	}
	if f, err = field(' '); err != nil {
		return m, err
	}
	min, err := hex(f, 32)
	if err != nil {
		return m, fmt.Errorf("device minor: %w", err)
	}
	m.DevMajor, m.DevMinor = uint32(maj), uint32(min)
	ino := l
	if i := bytes.IndexByte(l, ' '); i >= 0 {
		ino, l = l[:i], l[i+1:]
	} else {
		l = nil
	}
	if len(ino) == 0 || len(ino) > 20 {
		return m, fmt.Errorf("inode %q", ino)
	}
	if m.Inode, err = strconv.ParseUint(string(ino), 10, 64); err != nil {
		return m, fmt.Errorf("inode: %w", err)
	}
	// The name starts after the padding; the kernel never prints one that
	// starts with a space (paths start with '/', pseudo-names with '[' or
	// a word such as "anon_inode:").
	m.Name = string(bytes.TrimLeft(l, " "))
	return m, nil
}
