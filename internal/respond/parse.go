package respond

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
)

// Bounds on a policy. They are implementation limits: a policy is read on
// every change and kept in memory whole.
const (
	MaxPolicyBytes = 256 << 10 // the JSON document
	MaxVMs         = 4096      // VM scopes
	MaxPools       = 1024      // pool scopes
	MaxRules       = 64        // kinds per scope
)

// nameRE is a VM or pool name: a DNS label, as internal/vm requires.
var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// FieldError is a policy refused, with the field at fault as a dotted path
// ("vms.web.syscall_hook[1]"; "" for the whole document).
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return "response policy: " + e.Msg
	}
	return "response policy: " + e.Field + ": " + e.Msg
}

func fieldErr(field, format string, a ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, a...)}
}

// Parse reads a policy strictly: exactly one JSON object with at most the
// keys global, pools and vms; no duplicate keys at any level; names that
// are DNS labels; kinds matching ^[a-z][a-z0-9_]{0,63}$ or "*"; each rule
// a non-empty list of distinct known actions, "record" only alone. Errors
// are *FieldError. Work is linear in len(data), which is at most
// MaxPolicyBytes.
func Parse(data []byte) (*Policy, error) {
	if len(data) > MaxPolicyBytes {
		return nil, fieldErr("", "longer than %d bytes", MaxPolicyBytes)
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	p := &Policy{}
	if err := openDelim(d, '{', "", "an object"); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for d.More() {
		key, err := readKey(d, "", seen)
		if err != nil {
			return nil, err
		}
		switch key {
		case "global":
			p.Global, err = parseRules(d, "global")
		case "pools":
			p.Pools, err = parseScopes(d, "pools", MaxPools)
		case "vms":
			p.VMs, err = parseScopes(d, "vms", MaxVMs)
		default:
			err = fieldErr(key, "unknown field (global, pools, vms)")
		}
		if err != nil {
			return nil, err
		}
	}
	if err := closeDelim(d, ""); err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, fieldErr("", "trailing data after the policy object")
	}
	return p, nil
}

// parseScopes reads {"NAME": RULES, ...}.
func parseScopes(d *json.Decoder, field string, max int) (map[string]Rules, error) {
	if err := openDelim(d, '{', field, "an object of names"); err != nil {
		return nil, err
	}
	out := map[string]Rules{}
	seen := map[string]bool{}
	for d.More() {
		name, err := readKey(d, field, seen)
		if err != nil {
			return nil, err
		}
		f := field + "." + name
		if !nameRE.MatchString(name) {
			return nil, fieldErr(f, "%s is not a name (lower-case letters, digits and '-', 1 to 63, starting and ending with a letter or digit)", strconv.QuoteToASCII(name))
		}
		if len(out) == max {
			return nil, fieldErr(f, "more than %d entries", max)
		}
		if out[name], err = parseRules(d, f); err != nil {
			return nil, err
		}
	}
	return out, closeDelim(d, field)
}

// parseRules reads {"KIND": [ACTION, ...], ...}.
func parseRules(d *json.Decoder, field string) (Rules, error) {
	if err := openDelim(d, '{', field, "an object of finding kinds"); err != nil {
		return nil, err
	}
	out := Rules{}
	seen := map[string]bool{}
	for d.More() {
		kind, err := readKey(d, field, seen)
		if err != nil {
			return nil, err
		}
		f := field + "." + kind
		if !ValidKind(kind) {
			return nil, fieldErr(f, "%s is not a finding kind (^[a-z][a-z0-9_]{0,63}$ or \"*\")", strconv.QuoteToASCII(kind))
		}
		if len(out) == MaxRules {
			return nil, fieldErr(f, "more than %d rules", MaxRules)
		}
		if out[kind], err = parseActions(d, f); err != nil {
			return nil, err
		}
	}
	return out, closeDelim(d, field)
}

// parseActions reads ["ACTION", ...].
func parseActions(d *json.Decoder, field string) ([]Action, error) {
	if err := openDelim(d, '[', field, "a list of actions"); err != nil {
		return nil, err
	}
	var out []Action
	for i := 0; d.More(); i++ {
		f := field + "[" + strconv.Itoa(i) + "]"
		tok, err := d.Token()
		if err != nil {
			return nil, syntaxErr(f, err)
		}
		s, ok := tok.(string)
		if !ok {
			return nil, fieldErr(f, "expected an action name, got %s", describe(tok))
		}
		a := Action(s)
		switch {
		case !a.Valid():
			return nil, fieldErr(f, "unknown action %s (record, isolate, dump, pause, stop)", strconv.QuoteToASCII(s))
		case containsAction(out, a):
			return nil, fieldErr(f, "action %s given twice", s)
		case a == Record && len(out) > 0, a != Record && containsAction(out, Record):
			return nil, fieldErr(f, "\"record\" stands alone: every response is recorded anyway")
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil, fieldErr(field, "no actions (use [\"record\"] for an event only)")
	}
	return out, closeDelim(d, field)
}

func containsAction(l []Action, a Action) bool {
	for _, x := range l {
		if x == a {
			return true
		}
	}
	return false
}

// readKey reads an object key and refuses a repeat of one in seen.
func readKey(d *json.Decoder, field string, seen map[string]bool) (string, error) {
	tok, err := d.Token()
	if err != nil {
		return "", syntaxErr(field, err)
	}
	key, ok := tok.(string)
	if !ok { // cannot happen after More in an object, but never trust it
		return "", fieldErr(field, "expected a key, got %s", describe(tok))
	}
	f := key
	if field != "" {
		f = field + "." + key
	}
	if seen[key] {
		return "", fieldErr(f, "duplicate key")
	}
	seen[key] = true
	return key, nil
}

func openDelim(d *json.Decoder, want json.Delim, field, what string) error {
	tok, err := d.Token()
	if err != nil {
		return syntaxErr(field, err)
	}
	if tok != want {
		return fieldErr(field, "expected %s, got %s", what, describe(tok))
	}
	return nil
}

func closeDelim(d *json.Decoder, field string) error {
	if _, err := d.Token(); err != nil {
		return syntaxErr(field, err)
	}
	return nil
}

func syntaxErr(field string, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fieldErr(field, "malformed JSON at byte %d: %v", se.Offset, se)
	}
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return fieldErr(field, "unexpected end of the document")
	}
	return fieldErr(field, "malformed JSON: %v", err)
}

// describe names a JSON token for an error message without echoing much
// of it.
func describe(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '{', '}':
			return "an object"
		default:
			return "a list"
		}
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return "something else"
}

// Marshal returns p as canonical JSON (keys sorted), which Parse accepts.
func (p *Policy) Marshal() ([]byte, error) { return json.Marshal(p) }
