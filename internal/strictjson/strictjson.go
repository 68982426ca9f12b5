// Package strictjson reads JSON as strictly as a signature or a security decision
// needs: Go's decoder takes the last of two members of the same name, matches a
// struct's field names in any case ("Decision" for "decision") and leaves what follows
// the value unread, so two readers of the same bytes can see different things. Check
// refuses all three.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// Problems an Error names.
const (
	Duplicate   = "duplicate"    // a member given twice in one object
	CaseVariant = "case_variant" // a member whose name is a field's in another case
	Trailing    = "trailing"     // data after the value
)

// Error says what Check refused, and where.
type Error struct {
	Problem string
	Member  string // the member's path (dotted), as given; empty for Trailing
	Field   string // for CaseVariant, the field's own name
}

func (e *Error) Error() string {
	switch e.Problem {
	case Duplicate:
		return fmt.Sprintf("member %q given twice", e.Member)
	case CaseVariant:
		return fmt.Sprintf("member %q is not %q", e.Member, e.Field)
	}
	return "data after the JSON value"
}

// Check reads data as exactly one JSON value with nothing after it (but space), in
// which no object names a member twice and, where an object is read into a struct
// (as v's type says, v being what the data will be decoded into), every member that
// matches a field matches its name exactly. Members no field matches are left to the
// decoder. A refusal is an *Error; data that is not JSON gives the decoder's error.
func Check(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := walk(dec, reflect.TypeOf(v), ""); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &Error{Problem: Trailing}
	}
	return nil
}

// walk reads one value whose destination has type t (nil: unknown).
func walk(dec *json.Decoder, t reflect.Type, path string) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		var fields map[string]reflect.Type
		var elem reflect.Type
		if t != nil {
			switch t.Kind() {
			case reflect.Struct:
				fields = fieldsOf(t)
			case reflect.Map:
				elem = t.Elem()
			}
		}
		seen := map[string]bool{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return err
			}
			name, _ := k.(string)
			member := join(path, name)
			if seen[name] {
				return &Error{Problem: Duplicate, Member: member}
			}
			seen[name] = true
			next := elem
			if fields != nil {
				ft, ok := fields[name]
				if !ok {
					for f := range fields {
						// EqualFold folds as encoding/json does, the Kelvin sign
						// and the long s included.
						if strings.EqualFold(f, name) {
							return &Error{Problem: CaseVariant, Member: member, Field: join(path, f)}
						}
					}
				}
				next = ft
			}
			if err := walk(dec, next, member); err != nil {
				return err
			}
		}
		_, err := dec.Token() // '}'
		return err
	case json.Delim('['):
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for dec.More() {
			if err := walk(dec, elem, path); err != nil {
				return err
			}
		}
		_, err := dec.Token() // ']'
		return err
	}
	return nil
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// fieldsOf maps the JSON names of t's fields, those of embedded structs included, to
// their types.
func fieldsOf(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		ft := f.Type
		if f.Anonymous && name == "" {
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for n, typ := range fieldsOf(ft) {
					if _, ok := out[n]; !ok {
						out[n] = typ
					}
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = ft
	}
	return out
}
