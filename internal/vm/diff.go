package vm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// Change is one field of a spec that differs between two versions. Field
// is named as FieldError names it ("memory_mib", "nics[0].groups",
// "disks[1]"); Old and New are the values as compact JSON, "" for a list
// element or an optional object that is absent on that side.
type Change struct {
	Field string `json:"field"`
	Old   string `json:"old"`
	New   string `json:"new"`
}

// String renders a change as "field: old → new", with "(none)" for a side
// that is absent.
func (c Change) String() string {
	return c.Field + ": " + orNone(c.Old) + " → " + orNone(c.New)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// FormatChanges joins changes for a one-line message (an audit record, a
// CLI answer); no changes read "no change".
func FormatChanges(cs []Change) string {
	if len(cs) == 0 {
		return "no change"
	}
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = c.String()
	}
	return strings.Join(parts, "; ")
}

// Diff lists the fields in which b differs from a, in the order of the
// Spec's fields. It walks the struct by its JSON names, so fields added to
// Spec, Disk or NIC later are covered without changes here. Lists of
// objects (disks, NICs) are compared element by element, by position;
// lists of strings (a NIC's groups) and scalars as a whole.
func Diff(a, b Spec) []Change {
	var out []Change
	diffValue("", reflect.ValueOf(a), reflect.ValueOf(b), &out)
	return out
}

func diffValue(path string, a, b reflect.Value, out *[]Change) {
	switch a.Kind() {
	case reflect.Struct:
		t := a.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name := jsonName(f)
			if name == "" {
				continue
			}
			if path != "" {
				name = path + "." + name
			}
			diffValue(name, a.Field(i), b.Field(i), out)
		}
	case reflect.Pointer:
		switch {
		case a.IsNil() && b.IsNil():
		case a.IsNil() || b.IsNil():
			*out = append(*out, Change{Field: path, Old: render(a), New: render(b)})
		default:
			diffValue(path, a.Elem(), b.Elem(), out)
		}
	case reflect.Slice:
		if k := a.Type().Elem().Kind(); k != reflect.Struct && k != reflect.Pointer {
			if !reflect.DeepEqual(nilIfEmpty(a), nilIfEmpty(b)) {
				*out = append(*out, Change{Field: path, Old: render(a), New: render(b)})
			}
			return
		}
		for i := 0; i < max(a.Len(), b.Len()); i++ {
			p := fmt.Sprintf("%s[%d]", path, i)
			switch {
			case i >= a.Len():
				*out = append(*out, Change{Field: p, New: render(b.Index(i))})
			case i >= b.Len():
				*out = append(*out, Change{Field: p, Old: render(a.Index(i))})
			default:
				diffValue(p, a.Index(i), b.Index(i), out)
			}
		}
	default:
		if !a.Equal(b) {
			*out = append(*out, Change{Field: path, Old: render(a), New: render(b)})
		}
	}
}

// nilIfEmpty makes an empty list and an absent one compare equal: JSON
// drops both (omitempty), so they are the same definition.
func nilIfEmpty(v reflect.Value) any {
	if v.Len() == 0 {
		return nil
	}
	return v.Interface()
}

// jsonName is the field's JSON key, "" for fields JSON skips.
func jsonName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	tag := f.Tag.Get("json")
	if tag == "-" {
		return ""
	}
	if name, _, _ := strings.Cut(tag, ","); name != "" {
		return name
	}
	return f.Name
}

// render is v as compact JSON without HTML escaping ("" for nil); values
// of a Spec always marshal.
func render(v reflect.Value) string {
	if (v.Kind() == reflect.Pointer || v.Kind() == reflect.Slice) && v.IsNil() {
		if v.Kind() == reflect.Slice {
			return "[]"
		}
		return ""
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v.Interface()); err != nil {
		return fmt.Sprint(v.Interface())
	}
	return strings.TrimSuffix(buf.String(), "\n")
}
