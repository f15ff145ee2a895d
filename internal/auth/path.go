package auth

import "errors"

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
	"ip-sets":         true,
	"networks":        true,
	"pools":           true,
	"roles":           true,
	"security-groups": true,
	"users":           true,
	"vms":             true,
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
	Path      string
	Reason    string
	Traversal bool // a "." or ".." segment
}

func (e *PathError) Error() string {
	return "object path " + quoteASCII(e.Path) + ": " + e.Reason
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
// security-groups, ip-sets, users, groups, roles, audit, attestation) and
// segments at even depths are object names: DNS labels of 1 to 63 lower-case
// letters, digits and '-', starting and ending with a letter or digit.
// Examples: "/", "/vms", "/vms/web1", "/pools/prod", "/networks/n1".
//
// Nothing is rewritten: no case folding, no removal of "//", "." or a
// trailing "/". Such inputs are errors, because a second spelling of a path is
// an alias, and aliases are how ACL checks get bypassed. The returned string is
// therefore p itself; callers should still use it, so that a later
// canonicalisation rule changes no call site. Does not allocate on success.
func CanonicalPath(p string) (string, error) {
	if reason, trav := checkPath(p); reason != "" {
		return "", &PathError{Path: truncate(p), Reason: reason, Traversal: trav}
	}
	return p, nil
}

// checkPath returns "" for a canonical path, otherwise why it is not and
// whether it looks like a traversal attempt. It does not allocate.
func checkPath(p string) (reason string, traversal bool) {
	switch {
	case p == "":
		return "empty", false
	case p == "/":
		return "", false
	case p[0] != '/':
		return "must start with '/'", false
	case len(p) > MaxPathLen:
		return "longer than 255 bytes", false
	case p[len(p)-1] == '/':
		return "trailing '/'", false
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
			return "empty segment ('//')", false
		case seg == "." || seg == "..":
			return "'" + seg + "' segment (path traversal)", true
		case depth > MaxPathDepth:
			return "more than 8 segments", false
		case depth%2 == 1 && !collections[seg]:
			if why := labelProblem(seg); why != "" {
				return "segment " + itoa(depth) + ": " + why, false
			}
			return "segment " + itoa(depth) + ": not a collection (vms, pools, networks, ...)", false
		case depth%2 == 0:
			if why := labelProblem(seg); why != "" {
				return "segment " + itoa(depth) + ": " + why, false
			}
		}
		start = end + 1
	}
	return "", false
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

// isBelow reports whether canonical path d is a strict descendant of a.
func isBelow(d, a string) bool {
	if a == "/" {
		return d != "/"
	}
	return len(d) > len(a) && d[len(a)] == '/' && d[:len(a)] == a
}

// truncate bounds an attacker-supplied path before it is kept in an error.
func truncate(p string) string {
	if len(p) > MaxPathLen+1 {
		return p[:MaxPathLen+1] + "..."
	}
	return p
}

// quoteASCII quotes s with non-printable and non-ASCII bytes escaped, so a
// hostile path cannot inject terminal escapes or fake log lines.
func quoteASCII(s string) string {
	const hex = "0123456789abcdef"
	b := make([]byte, 0, len(s)+2)
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20 || c >= 0x7f:
			b = append(b, '\\', 'x', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return string(append(b, '"'))
}

func itoa(n int) string {
	if n >= 0 && n < 10 {
		return string(rune('0' + n))
	}
	return "9+"
}
