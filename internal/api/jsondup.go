package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// MaxJSONDepth bounds how deeply a request body may nest objects and
// arrays. Every body the API accepts is at most four levels deep; the
// bound keeps the duplicate-key walk's stack small and is far below
// encoding/json's own limit (10000).
const MaxJSONDepth = 64

// readBody reads a whole request body for the strict decoders. The body is
// normally already capped by http.MaxBytesReader (whose error passes
// through, a 413); any other reader is cut at MaxBodyBytes here too, so the
// two passes over the bytes (decode, then checkDuplicateKeys) are bounded.
func readBody(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxBodyBytes+1))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, err
	case err != nil:
		return nil, decodeError(err)
	case len(data) > MaxBodyBytes:
		return nil, &http.MaxBytesError{Limit: MaxBodyBytes}
	}
	return data, nil
}

// checkDuplicateKeys refuses a JSON value in which one object names a key
// twice, at any depth (objects inside arrays too), with a 400 whose field
// is the key's dotted path ("disks.path", as for type errors). encoding/json
// silently keeps the last of duplicate keys, so a body could show one value
// to a reviewer, a proxy or grantObj and another to the handler.
//
// Keys that differ only in case are duplicates too: encoding/json matches
// struct fields case-insensitively, so {"name":"a","Name":"b"} sets one
// field twice. No request type has a map whose keys could legitimately
// differ only in case.
//
// data must hold one valid JSON value (the caller has decoded it already);
// anything else is refused as malformed. Work is linear in len(data) and
// the walk holds at most MaxJSONDepth key sets.
func checkDuplicateKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // no float parsing: 1e400 is a valid token here
	var stack []*jsonFrame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return badRequest("", "malformed JSON: %v", err)
		}
		var top *jsonFrame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			if len(stack) > 0 {
				stack[len(stack)-1].valueDone()
			}
			continue
		}
		if top != nil && top.obj && top.wantKey {
			key, _ := tok.(string) // the decoder yields only strings here
			if err := top.addKey(key); err != nil {
				return err
			}
			continue
		}
		d, ok := tok.(json.Delim)
		if !ok { // a scalar value
			if top != nil {
				top.valueDone()
			}
			continue
		}
		if len(stack) >= MaxJSONDepth {
			return badRequest(top.childField(), "JSON nested deeper than %d levels at %s", MaxJSONDepth, strconv.Quote(top.childWhere()))
		}
		f := &jsonFrame{obj: d == '{', wantKey: d == '{'}
		if top != nil {
			f.field, f.where = top.childField(), top.childWhere()
		}
		if f.obj {
			f.keys = map[string]string{}
		}
		stack = append(stack, f)
	}
}

// jsonFrame is one open object or array of the duplicate-key walk.
type jsonFrame struct {
	obj     bool
	wantKey bool              // obj: the next token is a key (or '}')
	keys    map[string]string // obj: folded key -> key as written
	key     string            // obj: the key whose value is being read
	index   int               // array: index of the element being read
	field   string            // dotted path of this container ("" at the top)
	where   string            // for messages: "disks[1]" ("" at the top)
}

func (f *jsonFrame) addKey(key string) error {
	fold := foldKey(key)
	if prev, dup := f.keys[fold]; dup {
		msg := "duplicate key " + strconv.Quote(key)
		if f.where != "" {
			msg += " in " + strconv.Quote(f.where)
		}
		if prev != key {
			msg += " (also given as " + strconv.Quote(prev) + "; keys match case-insensitively)"
		}
		return badRequest(joinField(f.field, key), "%s", msg)
	}
	f.keys[fold] = key
	f.key, f.wantKey = key, false
	return nil
}

// valueDone moves past one complete value inside f.
func (f *jsonFrame) valueDone() {
	if f.obj {
		f.wantKey = true
	} else {
		f.index++
	}
}

// childField is the dotted path of the value being read inside f; array
// indices are left out, as in encoding/json's UnmarshalTypeError.Field.
func (f *jsonFrame) childField() string {
	if f.obj {
		return joinField(f.field, f.key)
	}
	return f.field
}

// childWhere locates the value being read inside f for messages, with
// array indices: "disks[1]", "nics[0].groups".
func (f *jsonFrame) childWhere() string {
	if f.obj {
		return joinField(f.where, f.key)
	}
	return f.where + "[" + strconv.Itoa(f.index) + "]"
}

func joinField(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// foldKey maps keys that encoding/json would match to the same struct
// field to one string (its case folding: each rune to upper(lower(r))).
func foldKey(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || 'a' <= c && c <= 'z' {
			ascii = false
			break
		}
	}
	if ascii {
		return s // already folded: no allocation for the common case
	}
	b := make([]byte, 0, len(s))
	for _, r := range s {
		if r < utf8.RuneSelf {
			if 'a' <= r && r <= 'z' {
				r -= 'a' - 'A'
			}
			b = append(b, byte(r))
			continue
		}
		b = utf8.AppendRune(b, unicode.ToUpper(unicode.ToLower(r)))
	}
	return string(b)
}
