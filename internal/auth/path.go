package auth

import (
	"errors"
	"strconv"
)

// Object path limits. They are implementation limits, not protocol ones: a
// path is at most 255 bytes and 8 segments deep, which bounds the ancestor
// walk of every access check.
const (
	MaxPathLen   = 255
	MaxPathDepth = 8
	maxLabel     = 63 // a DNS label
)

// collections are the fixed names allowed at odd depths (1, 3, 5, ...).
// Sorted; keep in step with the objects the API exposes.
var collections = map[string]bool{
	"attestation":     true,
	"audit":           true,
	"groups":          true,
	"images":          true,
	"ip-sets":         true,
	"ips":             true,
	"mirrors":         true,
	"networks":        true,
	"pools":           true,
	"roles":           true,
	"security-groups": true,
	"storage":         true,
	"users":           true,
	"vms":             true,
	"volumes":         true,
}

// Errors wrapped by PathError. Every invalid path is ErrInvalidPath; those
// that try to navigate ("." or ".." segments) are also ErrPathTraversal, so
// the audit log can flag them.
var (
	ErrInvalidPath   = errors.New("invalid object path")
	ErrPathTraversal = errors.New("object path traversal")
)

// PathError says why an object path was rejected.
type PathError struct {
	Path      string // the input, cut to 256 bytes
	Segment   int    // 1-based segment at fault; 0 when the whole path is
	Reason    string
	Traversal bool // a "." or ".." segment
}

func (e *PathError) Error() string {
	msg := "object path " + strconv.QuoteToASCII(e.Path) + ": "
	if e.Segment > 0 {
		msg += "segment " + strconv.Itoa(e.Segment) + ": "
	}
	return msg + e.Reason
}

// Is makes errors.Is(err, ErrInvalidPath) true for every PathError and
// errors.Is(err, ErrPathTraversal) true for traversal attempts.
func (e *PathError) Is(target error) bool {
	return target == ErrInvalidPath || e.Traversal && target == ErrPathTraversal
}

// CanonicalPath checks that p is a canonical object path and returns it.
//
// Grammar: "/" alone, or one or more "/segment" where segments at odd depths
// (first, third, ...) are collection names (vms, pools, networks,
// security-groups, ip-sets, storage, volumes, images, users, groups, roles,
// audit, attestation) and
// segments at even depths are object names: DNS labels of 1 to 63 lower-case
// letters, digits and '-', starting and ending with a letter or digit. At most
// 255 bytes and 8 segments. Examples: "/", "/vms", "/vms/web1", "/pools/prod",
// "/networks/n1", "/security-groups/web", "/storage/default/volumes/web"
// (a volume in pool default; "volumes" is the collection inside a pool).
//
// Nothing is rewritten: no case folding, no removal of "//", "." or a
// trailing "/". Such inputs are errors, because a second spelling of a path is
// an alias, and aliases are how ACL checks get bypassed. The returned string is
// therefore p itself; callers should still use it, so that a later
// canonicalisation rule changes no call site. Does not allocate on success.
func CanonicalPath(p string) (string, error) {
	if reason, seg := checkPath(p); reason != "" {
		if len(p) > MaxPathLen+1 {
			p = p[:MaxPathLen+1]
		}
		return "", &PathError{Path: p, Segment: seg, Reason: reason, Traversal: reason == reasonTraversal}
	}
	return p, nil
}

const reasonTraversal = "'.' or '..' segment (path traversal)"

// checkPath returns "" for a canonical path, otherwise a constant saying why
// not and the 1-based segment at fault (0 for the whole path). It never
// allocates, so access checks can run it on every hostile input.
func checkPath(p string) (reason string, segment int) {
	switch {
	case p == "":
		return "empty", 0
	case p == "/":
		return "", 0
	case p[0] != '/':
		return "must start with '/'", 0
	case len(p) > MaxPathLen:
		return "longer than 255 bytes", 0
	case p[len(p)-1] == '/':
		return "trailing '/'", 0
	}
	depth := 0
	for start := 1; start <= len(p); {
		end := start
		for end < len(p) && p[end] != '/' {
			end++
		}
		seg := p[start:end]
		depth++
		switch {
		case seg == "":
			return "empty segment ('//')", depth
		case seg == "." || seg == "..":
			return reasonTraversal, depth
		case depth > MaxPathDepth:
			return "more than 8 segments", depth
		}
		if why := labelProblem(seg); why != "" {
			return why, depth
		}
		if depth%2 == 1 && !collections[seg] {
			return "not a collection (vms, pools, networks, security-groups, ip-sets, storage, volumes, images, users, groups, roles, audit, attestation, ips, mirrors)", depth
		}
		start = end + 1
	}
	return "", 0
}

// labelProblem returns "" if s is a DNS label as Bulwark names objects.
func labelProblem(s string) string {
	if len(s) > maxLabel {
		return "longer than 63 bytes"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 0x80:
			return "non-ASCII byte"
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9':
		case c == '-' && i > 0 && i < len(s)-1:
		default:
			return "must be lower-case letters, digits and '-', starting and ending with a letter or digit"
		}
	}
	return ""
}

// parentPath returns the parent of a canonical path other than "/".
func parentPath(p string) string {
	for i := len(p) - 1; i > 0; i-- {
		if p[i] == '/' {
			return p[:i]
		}
	}
	return "/"
}
