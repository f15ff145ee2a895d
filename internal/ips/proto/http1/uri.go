package http1

import "bytes"

// NormalizeURI returns the http.uri buffer for a request URI the way
// Suricata's default (IDS personality) libhtp configuration builds it:
//
//   - only path, "?query" and "#fragment" are kept (an absolute URI's
//     scheme and authority are dropped, like uri-include-all: false);
//   - path: %XX and %uXXXX decoded (invalid escapes keep their '%'),
//     encoded and raw backslashes become '/', runs of '/' collapse to one,
//     UTF-8 sequences (overlong ones too) become their code point when it
//     is below 0x100 or a full-width ASCII form, '?' otherwise, and "." and
//     ".." segments are removed (RFC 3986 section 5.2.4);
//   - query and fragment: %XX and %uXXXX decoded, '+' kept;
//   - case is preserved.
//
// The result is appended to dst. When the URI has no path, query or
// fragment (CONNECT's authority form), the raw URI is returned.
func NormalizeURI(dst, raw []byte) []byte {
	u := splitURI(raw)
	start := len(dst)
	if u.path != nil {
		dst = normalizePath(dst, u.path)
	}
	if u.query != nil {
		dst = append(dst, '?')
		dst = decodeQuery(dst, u.query)
	}
	if u.fragment != nil {
		dst = append(dst, '#')
		dst = decodeQuery(dst, u.fragment)
	}
	if len(dst) == start && u.path == nil && u.query == nil && u.fragment == nil {
		dst = append(dst, raw...)
	}
	return dst
}

// uriParts are sub-slices of a raw URI; nil means absent, empty means
// present but empty (a lone "?").
type uriParts struct {
	host, port, path, query, fragment []byte
	hasAuthority                      bool
}

// splitURI follows libhtp's split: a URI not starting with '/' that has a
// ':' has a scheme; after "scheme:" a "//" (not "///") starts an authority
// ([user[:pass]@]host[:port]); then path up to '?' or '#', query up to '#',
// fragment to the end.
func splitURI(raw []byte) uriParts {
	var u uriParts
	rest := raw
	if len(rest) > 0 && rest[0] != '/' {
		if i := bytes.IndexByte(rest, ':'); i >= 0 {
			rest = rest[i+1:]
			if len(rest) >= 2 && rest[0] == '/' && rest[1] == '/' && (len(rest) == 2 || rest[2] != '/') {
				rest = rest[2:]
				end := bytes.IndexAny(rest, "/?#")
				if end < 0 {
					end = len(rest)
				}
				auth := rest[:end]
				rest = rest[end:]
				if at := bytes.LastIndexByte(auth, '@'); at >= 0 {
					auth = auth[at+1:]
				}
				u.hasAuthority = true
				u.host, u.port = splitHostPort(auth)
			}
		}
	}
	if i := bytes.IndexAny(rest, "?#"); i != 0 {
		if i < 0 {
			i = len(rest)
		}
		u.path = rest[:i]
		rest = rest[i:]
	}
	if len(rest) > 0 && rest[0] == '?' {
		rest = rest[1:]
		i := bytes.IndexByte(rest, '#')
		if i < 0 {
			i = len(rest)
		}
		u.query = rest[:i:i]
		rest = rest[i:]
	}
	if len(rest) > 0 && rest[0] == '#' {
		u.fragment = rest[1:]
	}
	return u
}

// splitHostPort splits "host[:port]" (host possibly "[v6]"), trimming
// spaces around the host the way libhtp does.
func splitHostPort(b []byte) (host, port []byte) {
	b = bytes.TrimLeft(b, " ")
	if len(b) > 0 && b[0] == '[' {
		if i := bytes.IndexByte(b, ']'); i >= 0 {
			host, b = b[:i+1], b[i+1:]
			if len(b) > 0 && b[0] == ':' {
				port = bytes.TrimSpace(b[1:])
			}
			return host, port
		}
		return b, nil
	}
	if i := bytes.IndexByte(b, ':'); i >= 0 {
		host, port = b[:i], bytes.TrimSpace(b[i+1:])
	} else {
		host = b
	}
	return bytes.TrimRight(host, " "), port
}

// normalizeHost lower-cases a host name; trimDots also removes trailing
// dots (libhtp does so for a host taken from the URI, not from Host:).
func normalizeHost(dst, host []byte, trimDots bool) []byte {
	if trimDots {
		host = bytes.TrimRight(host, ".")
	}
	for _, c := range host {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// decodeU decodes the 4 hex digits of a %uXXXX escape to one byte: code
// points below 0x100 as themselves, full-width ASCII (U+FF01..U+FF5E) as
// ASCII, anything else as '?'.
func decodeU(h []byte) (byte, bool) {
	var v uint32
	for _, c := range h[:4] {
		d, ok := unhex(c)
		if !ok {
			return 0, false
		}
		v = v<<4 | uint32(d)
	}
	return bestFit(v), true
}

func bestFit(cp uint32) byte {
	switch {
	case cp < 0x100:
		return byte(cp)
	case cp >= 0xff01 && cp <= 0xff5e:
		return byte(cp - 0xfee0)
	}
	return '?'
}

// percent decodes one escape at s[0]=='%'. It returns the byte and how
// many input bytes it used; an invalid escape yields '%' and 1.
func percent(s []byte) (byte, int) {
	if len(s) >= 6 && (s[1] == 'u' || s[1] == 'U') {
		if b, ok := decodeU(s[2:6]); ok {
			return b, 6
		}
		return '%', 1
	}
	if len(s) >= 3 {
		h, ok1 := unhex(s[1])
		l, ok2 := unhex(s[2])
		if ok1 && ok2 {
			return h<<4 | l, 3
		}
	}
	return '%', 1
}

func decodeQuery(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		if s[i] == '%' {
			b, n := percent(s[i:])
			dst = append(dst, b)
			i += n
			continue
		}
		dst = append(dst, s[i])
		i++
	}
	return dst
}

// normalizePath appends the normalized form of path to dst.
func normalizePath(dst, path []byte) []byte {
	start := len(dst)
	// Pass 1: percent-decoding, separator conversion and compression.
	for i := 0; i < len(path); {
		c := path[i]
		n := 1
		if c == '%' {
			c, n = percent(path[i:])
		}
		i += n
		if c == '\\' {
			c = '/'
		}
		if c == '/' && len(dst) > start && dst[len(dst)-1] == '/' {
			continue
		}
		dst = append(dst, c)
	}
	// Pass 2: UTF-8 best fit, in place (output never longer than input).
	dst = dst[:start+bestFitUTF8(dst[start:])]
	// Pass 3: dot segments, in place.
	return dst[:start+removeDotSegments(dst[start:])]
}

// bestFitUTF8 rewrites s in place: ASCII stays, a UTF-8 sequence
// (overlong forms accepted) becomes bestFit(code point), an invalid byte
// becomes '?'. It returns the new length.
func bestFitUTF8(s []byte) int {
	ascii := true
	for _, c := range s {
		if c >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return len(s)
	}
	w := 0
	for r := 0; r < len(s); {
		c := s[r]
		var need int
		var cp uint32
		switch {
		case c < 0x80:
			s[w] = c
			w++
			r++
			continue
		case c&0xe0 == 0xc0:
			need, cp = 1, uint32(c&0x1f)
		case c&0xf0 == 0xe0:
			need, cp = 2, uint32(c&0x0f)
		case c&0xf8 == 0xf0:
			need, cp = 3, uint32(c&0x07)
		default:
			s[w] = '?'
			w++
			r++
			continue
		}
		ok := r+need < len(s)
		for k := 1; ok && k <= need; k++ {
			if s[r+k]&0xc0 != 0x80 {
				ok = false
				break
			}
			cp = cp<<6 | uint32(s[r+k]&0x3f)
		}
		if !ok {
			s[w] = '?'
			w++
			r++
			continue
		}
		s[w] = bestFit(cp)
		w++
		r += need + 1
	}
	return w
}

// removeDotSegments applies RFC 3986 section 5.2.4 to s in place and
// returns the new length.
func removeDotSegments(s []byte) int {
	in := s
	w := 0
	for len(in) > 0 {
		switch {
		case bytes.HasPrefix(in, []byte("../")):
			in = in[3:]
		case bytes.HasPrefix(in, []byte("./")):
			in = in[2:]
		case bytes.HasPrefix(in, []byte("/./")):
			in = in[2:]
		case len(in) == 2 && in[0] == '/' && in[1] == '.':
			in = in[:1]
			in[0] = '/'
		case bytes.HasPrefix(in, []byte("/../")):
			in = in[3:]
			w = popSegment(s, w)
		case len(in) == 3 && in[0] == '/' && in[1] == '.' && in[2] == '.':
			in = in[2:]
			in[0] = '/'
			w = popSegment(s, w)
		case len(in) == 1 && in[0] == '.', len(in) == 2 && in[0] == '.' && in[1] == '.':
			in = nil
		default:
			// Move the first segment ("/" and up to the next "/").
			j := 1
			if in[0] != '/' {
				j = 0
			}
			for j < len(in) && in[j] != '/' {
				j++
			}
			w += copy(s[w:], in[:j])
			in = in[j:]
		}
	}
	return w
}

// popSegment removes the last segment and its preceding '/' from s[:w].
func popSegment(s []byte, w int) int {
	i := bytes.LastIndexByte(s[:w], '/')
	if i < 0 {
		return 0
	}
	return i
}
