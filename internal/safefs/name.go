package safefs

import (
	"fmt"
	"strings"
)

// Implementation limits on names, from Linux's PATH_MAX and NAME_MAX.
const (
	maxNameLen      = 4095
	maxComponentLen = 255
)

// checkName reports whether name is a relative, "/"-separated name with no
// empty, "." or ".." component and no NUL byte. It is stricter than the
// kernel needs under RESOLVE_BENEATH; the point is that the component walk
// used without openat2 can rely on it, and that odd names fail early with a
// clear error.
func checkName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrInvalidName)
	case len(name) > maxNameLen:
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidName, maxNameLen)
	case name[0] == '/':
		return fmt.Errorf("%w: absolute", ErrInvalidName)
	case strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("%w: contains NUL", ErrInvalidName)
	}
	for c := range strings.SplitSeq(name, "/") {
		switch {
		case c == "":
			return fmt.Errorf("%w: empty component", ErrInvalidName)
		case c == "." || c == "..":
			return fmt.Errorf("%w: %q component", ErrInvalidName, c)
		case len(c) > maxComponentLen:
			return fmt.Errorf("%w: component longer than %d bytes", ErrInvalidName, maxComponentLen)
		}
	}
	return nil
}

// splitName splits a checked name into its directory part ("" for a single
// component) and its final component.
func splitName(name string) (dir, base string) {
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return "", name
	}
	return name[:i], name[i+1:]
}
