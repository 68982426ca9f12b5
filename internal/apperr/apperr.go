// Package apperr defines the kinds of error a user of Steward can see. Capability
// packages return *Error values; internal/server maps the kind to an HTTP status in
// exactly one place.
package apperr

import (
	"errors"
	"fmt"
)

// Kind classifies an error for the caller.
type Kind string

// The kinds of error a user can see.
const (
	Invalid      Kind = "invalid"
	Unauthorized Kind = "unauthorized"
	Forbidden    Kind = "forbidden"
	NotFound     Kind = "not_found"
	Conflict     Kind = "conflict"
	TooLarge     Kind = "too_large"
	RateLimited  Kind = "rate_limited"
	Unavailable  Kind = "unavailable" // the server sheds load: try again shortly
)

// Error is an error meant for the user: a kind, a stable machine code, a message and,
// where one field is to blame, its name.
type Error struct {
	Kind    Kind
	Code    string
	Message string
	Field   string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s", e.Field, e.Message)
	}
	return e.Message
}

// Is makes errors.Is match two errors of the same kind and code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Kind == e.Kind && t.Code == e.Code
}

// New returns an error of the given kind.
func New(kind Kind, code, message string) *Error {
	return &Error{Kind: kind, Code: code, Message: message}
}

// Field returns an invalid-input error naming the field at fault.
func Field(field, code, message string) *Error {
	return &Error{Kind: Invalid, Code: code, Message: message, Field: field}
}

// As returns the *Error in err's chain, if any.
func As(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

// KindOf returns the kind of err, or "" for an internal error.
func KindOf(err error) Kind {
	if e, ok := As(err); ok {
		return e.Kind
	}
	return ""
}
