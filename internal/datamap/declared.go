package datamap

import (
	"context"
	"fmt"
	"slices"

	"steward/internal/store"
)

// What most holders do for one subject follows from their declaration: every table
// that names its subject column holds the subject's rows there. ExportDeclared and
// EraseDeclared are those defaults; a holder calls them for its tables and adds only
// what its declaration cannot say (a suppression, a blanked author, objects).

// ExportDeclared returns, for every table of d that names its subject column, the
// subject's rows, sealed columns opened with the subject's key.
func ExportDeclared(ctx context.Context, q store.Querier, s Subject, d Declaration) ([]Section, error) {
	var out []Section
	for _, t := range d.Tables {
		if t.Subject == "" {
			continue
		}
		sec, err := s.Select(ctx, q, t, store.QuoteIdent(t.Subject)+" = $1", s.ID)
		if err != nil {
			return nil, err
		}
		out = append(out, sec)
	}
	return out, nil
}

// EraseDeclared deletes the subject's rows from every table of d that names its
// subject column, last table first (a table declared after another may reference it).
func EraseDeclared(ctx context.Context, tx *store.Tx, s Subject, d Declaration) error {
	if s.ID == "" {
		return nil
	}
	for _, t := range slices.Backward(d.Tables) {
		if t.Subject == "" {
			continue
		}
		q := "DELETE FROM " + store.QuoteIdent(t.Name) + " WHERE " + store.QuoteIdent(t.Subject) + " = $1"
		if _, err := tx.ExecContext(ctx, q, s.ID); err != nil {
			return fmt.Errorf("datamap: erase %s: %w", t.Name, err)
		}
	}
	return nil
}

// SetErasureOrder fixes the order in which erasure runs the holders, by name. Every
// registered holder must be named once: a holder added later without a place in the
// order is an error at start, not a silent step at the end.
func (r *Registry) SetErasureOrder(names ...string) error {
	if len(names) != len(r.holders) {
		return fmt.Errorf("datamap: erasure order names %d holders, %d are registered", len(names), len(r.holders))
	}
	order := make([]Holder, 0, len(names))
	for _, n := range names {
		h, ok := r.Holder(n)
		if !ok {
			return fmt.Errorf("datamap: erasure order: no holder %q", n)
		}
		if slices.Contains(order, h) {
			return fmt.Errorf("datamap: erasure order names %q twice", n)
		}
		order = append(order, h)
	}
	r.order = order
	return nil
}

// ErasureOrder returns the holders in the order erasure runs them: the order set by
// SetErasureOrder, or else the reverse of registration.
func (r *Registry) ErasureOrder() []Holder {
	if r.order != nil {
		return slices.Clone(r.order)
	}
	out := slices.Clone(r.holders)
	slices.Reverse(out)
	return out
}
