package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"strconv"
	"time"
)

// The document's shape, checked token by token before encoding/json fills
// the structs. encoding/json alone would accept duplicate keys (last one
// wins), keys in another case ("Version"), and nulls, and its errors do not
// say where in the document they are.
type shape struct {
	kind   byte              // 'o' object with fixed fields, 'm' map, 'a' array, 's' string, 'd' duration string, 'n' integer, 'b' bool
	fields map[string]*shape // 'o'
	elem   *shape            // 'm' values, 'a' elements
	max    int               // 'm', 'a': most entries
}

var (
	shString  = &shape{kind: 's'}
	shNumber  = &shape{kind: 'n'}
	shBool    = &shape{kind: 'b'}
	shDur     = &shape{kind: 'd'}
	shDigests = &shape{kind: 'a', elem: shString, max: MaxDigests}
	shNamed   = &shape{kind: 'm', elem: shDigests, max: MaxNamed}
	shImgRefs = &shape{kind: 'a', elem: shString, max: MaxImageRefs}

	documentShape = &shape{kind: 'o', fields: map[string]*shape{
		"version": shNumber,
		"host": {kind: 'o', fields: map[string]*shape{
			"bulwark-binary":   shDigests,
			"qemu-binary":      shDigests,
			"qemu-firmware":    shNamed,
			"seccomp-filter":   shNamed,
			"hardening-config": shDigests,
		}},
		"images": {kind: 'm', max: MaxImages, elem: &shape{kind: 'o', fields: map[string]*shape{
			"kernel": shString, "initrd": shString, "disk": shString,
		}}},
		"vms": {kind: 'm', max: MaxVMRules, elem: &shape{kind: 'o', fields: map[string]*shape{
			"images": shImgRefs, "definition": shDigests, "cmdline": shDigests, "disks": shDigests,
		}}},
		"vm_default": {kind: 'o', fields: map[string]*shape{
			"images": shImgRefs, "disks": shDigests,
		}},
		"introspection": {kind: 'o', fields: map[string]*shape{
			"required": shBool, "max_age": shDur,
			"ignore_kinds": {kind: 'a', elem: shString, max: MaxKinds},
		}},
		"runtime": {kind: 'o', fields: map[string]*shape{
			"required": shBool, "max_age": shDur, "on_error": shString,
		}},
	}}
	// Required fields, by path of the object holding them.
	requiredFields = map[*shape][]string{}
)

func init() {
	requiredFields[documentShape] = []string{"version", "host"}
	requiredFields[documentShape.fields["host"]] = []string{"bulwark-binary", "qemu-binary", "hardening-config"}
	requiredFields[documentShape.fields["images"].elem] = []string{"kernel"}
	requiredFields[documentShape.fields["vm_default"]] = []string{"images"}
}

// checkShape walks the document once against documentShape. The shape is
// finite, so nesting depth is bounded by it: anything deeper is an error at
// the first unexpected token.
func checkShape(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := walk(dec, documentShape, ""); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errAt("", "data after the document")
	}
	return nil
}

func walk(dec *json.Decoder, sh *shape, at string) error {
	tok, err := dec.Token()
	if err != nil {
		return syntaxErr(at, err)
	}
	want := map[byte]string{'o': "an object", 'm': "an object", 'a': "an array", 's': "a string", 'd': "a duration string such as \"10m\"", 'n': "an integer", 'b': "true or false"}[sh.kind]
	switch sh.kind {
	case 's':
		if s, ok := tok.(string); !ok {
			return errAt(pathOr(at), "must be %s, not %s", want, describe(tok))
		} else if len(s) > 4096 {
			return errAt(pathOr(at), "string of %d bytes is too long", len(s))
		}
		return nil
	case 'd':
		s, ok := tok.(string)
		if !ok {
			return errAt(pathOr(at), "must be %s, not %s", want, describe(tok))
		}
		if _, err := time.ParseDuration(s); err != nil {
			return errAt(pathOr(at), "%s is not a duration such as \"10m\"", strconv.Quote(clip(s, 40)))
		}
		return nil
	case 'n':
		n, ok := tok.(json.Number)
		if !ok {
			return errAt(pathOr(at), "must be %s, not %s", want, describe(tok))
		}
		if v, err := n.Int64(); err != nil || v < 0 || v > math.MaxInt32 {
			return errAt(pathOr(at), "%s: must be an integer from 0 to %d", clip(n.String(), 40), math.MaxInt32)
		}
		return nil
	case 'b':
		if _, ok := tok.(bool); !ok {
			return errAt(pathOr(at), "must be %s, not %s", want, describe(tok))
		}
		return nil
	case 'a':
		if d, ok := tok.(json.Delim); !ok || d != '[' {
			return errAt(pathOr(at), "must be %s, not %s", want, describe(tok))
		}
		for i := 0; dec.More(); i++ {
			if i >= sh.max {
				return errAt(pathOr(at), "more than %d entries", sh.max)
			}
			if err := walk(dec, sh.elem, at+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
		_, err := dec.Token() // ']'
		return syntaxErr(at, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errAt(pathOr(at), "must be %s, not %s", want, describe(tok))
	}
	seen := map[string]bool{}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return syntaxErr(at, err)
		}
		key := kt.(string) // the decoder only yields string keys inside an object
		var sub *shape
		var kp string
		if sh.kind == 'm' {
			kp = mapPath(at, key)
			if len(seen) >= sh.max {
				return errAt(pathOr(at), "more than %d entries", sh.max)
			}
			sub = sh.elem
		} else {
			kp = key
			if at != "" {
				kp = at + "." + key
			}
			if sub = sh.fields[key]; sub == nil {
				return errAt(kp, "unknown field")
			}
		}
		if seen[key] {
			return errAt(kp, "duplicate key")
		}
		seen[key] = true
		if err := walk(dec, sub, kp); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // '}'
		return syntaxErr(at, err)
	}
	for _, f := range requiredFields[sh] {
		if !seen[f] {
			if at == "" {
				return errAt(f, "missing")
			}
			return errAt(at+"."+f, "missing")
		}
	}
	return nil
}

func syntaxErr(at string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, io.EOF) {
		return errAt(pathOr(at), "document ends early")
	}
	return errAt(pathOr(at), "%v", err)
}

func pathOr(at string) string {
	if at == "" {
		return "(document)"
	}
	return at
}

func describe(tok json.Token) string {
	switch t := tok.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case json.Delim:
		if t == '[' {
			return "an array"
		}
		if t == '{' {
			return "an object"
		}
	}
	return "something else"
}
