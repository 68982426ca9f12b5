// Package datamap is the registry of holders: every package that keeps personal data
// declares here, in code, which tables and columns hold it, the data categories (Fides'
// taxonomy names), the purpose, lawful basis and retention, and implements Export and
// Erase for one subject. The registry checks itself against the live schema, writes the
// portability archive, and scans for residue after an erasure.
package datamap

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"

	"steward/internal/store"
)

// Subject is the person an export or erasure is about. An erasure acts on an address
// (suppresses it, removes mail to it, deletes what is filed under it) only when the
// address is proven to be the subject's: anyone can type anyone's address.
type Subject struct {
	ID string
	// Email is the subject's current address if it is proven theirs (a verified account
	// address, or the address a subscriber is known by), else "".
	Email string
	// Proven are the blind indexes (vault.Index.Address) of the other addresses the
	// subject proved before: until erasure they are the subject's too, and holders act
	// on them as on Email. Only the hashes are kept, so holders compare hashes.
	Proven []string
	// Pending is an address the subject gave but never confirmed (a change of address
	// not yet confirmed, a registration never verified). It may be someone else's: no
	// holder acts on it; it is forgotten with the row that holds it.
	Pending string
	// Again marks a subject erased again by the ledger's replay after a restore: the
	// erasure was carried out before, and what it told others (the processors) was
	// told then.
	Again bool
	// KeepKey says a legal hold keeps the subject's data key (it opens the held
	// data): a holder's Erase must not shred it; the vault's step does, once the hold
	// ends.
	KeepKey bool
	// Key opens what is sealed under the subject's data key (exports); nil when the
	// subject has none.
	Key Opener
}

// Opener opens values sealed under one subject's data key.
type Opener interface {
	OpenText(label, sealed string) (string, error)
}

// Column declares one column of a holder's table.
type Column struct {
	Name string
	// Categories are Fides data categories, e.g. "user.contact.email". A column
	// holding no personal data has none and says why in NotPersonal.
	Categories  []string
	NotPersonal string
	// Withheld columns are held but left out of the export, with the reason shown
	// in the manifest (a password hash: exporting it would only weaken the account).
	Withheld string
	// Time marks a column of Unix milliseconds, written as RFC 3339 in the export.
	Time bool
	// Sealed marks a column stored as AEAD ciphertext under the row's subject's data
	// key, bound to the subject and to Label (table.column when empty): once the key
	// is shredded, no copy of the value opens, wherever the bytes survive.
	Sealed bool
	// Label names what a sealed value is bound to, when several columns hold the same
	// ciphertext (a kept copy of a subscriber's address); default "table.column".
	Label string
	// Plain says why a column with categories is kept unsealed: a keyed hash, a random
	// id, a value that must be compared in SQL.
	Plain string
}

// SealLabel is what a sealed column's values are bound to.
func (c Column) SealLabel(table string) string {
	if c.Label != "" {
		return c.Label
	}
	return table + "." + c.Name
}

// Table declares one table owned by a holder.
type Table struct {
	Name string
	// Subject is the column naming the person each row is about (the subject whose
	// data key seals the row's sealed columns), or "" for a table whose rows are not
	// one person's.
	Subject string
	Columns []Column
}

// Declaration is what a holder tells the data map about itself.
type Declaration struct {
	Name        string // short, unique; names the files of the export
	Description string
	Purpose     string
	LawfulBasis string // contract, legitimate_interest, consent, legal_obligation
	Retention   string
	Tables      []Table
}

// Section is one table's worth of a subject's data in an export.
type Section struct {
	Table   string
	Columns []string
	Rows    [][]string
}

// Holder owns some personal data and can export and erase it for one subject.
type Holder interface {
	Declaration() Declaration
	Export(ctx context.Context, q store.Querier, s Subject) ([]Section, error)
	// Erase removes every trace of the subject from the holder's tables. It must be
	// idempotent: an interrupted erasure runs it again.
	Erase(ctx context.Context, tx *store.Tx, s Subject) error
}

// FileExporter is a holder that also has bulky content (files) for the export, which it
// streams entry by entry.
type FileExporter interface {
	ExportFiles(ctx context.Context, s Subject, add func(name string, r io.Reader) error) error
}

// ResidueChecker is a holder that can tell, beyond text columns, what of a subject it
// still keeps (objects in storage, keys).
type ResidueChecker interface {
	Residue(ctx context.Context, subjectID string) ([]string, error)
}

// TermScanner is a holder with a store outside the database (a folder of files) that it
// can search for a subject's identifiers.
type TermScanner interface {
	ScanTerms(ctx context.Context, terms []Term) ([]Finding, error)
}

// ScanAll runs Scan on the database and asks every holder with a store of its own to
// search it too.
func (r *Registry) ScanAll(ctx context.Context, db *store.DB, terms []Term) ([]Finding, error) {
	out, err := Scan(ctx, db, terms)
	if err != nil {
		return nil, err
	}
	more, err := r.scanHolders(ctx, terms)
	if err != nil {
		return nil, err
	}
	return append(out, more...), nil
}

// scanHolders asks every holder with a store of its own to search it.
func (r *Registry) scanHolders(ctx context.Context, terms []Term) ([]Finding, error) {
	var out []Finding
	for _, h := range r.holders {
		if ts, ok := h.(TermScanner); ok {
			found, err := ts.ScanTerms(ctx, usable(terms))
			if err != nil {
				return nil, fmt.Errorf("datamap: scan %s: %w", h.Declaration().Name, err)
			}
			out = append(out, found...)
		}
	}
	return out, nil
}

// CheckResidue asks every holder that can what it still keeps of the subject.
func (r *Registry) CheckResidue(ctx context.Context, subjectID string) ([]string, error) {
	var out []string
	for _, h := range r.holders {
		if rc, ok := h.(ResidueChecker); ok {
			found, err := rc.Residue(ctx, subjectID)
			if err != nil {
				return nil, fmt.Errorf("datamap: residue of %s: %w", h.Declaration().Name, err)
			}
			out = append(out, found...)
		}
	}
	return out, nil
}

// Registry is the data map: the holders, and the tables that hold no personal data
// with the reason why.
type Registry struct {
	holders     []Holder
	order       []Holder          // erasure order, when set
	nonPersonal map[string]string // table name or prefix ending in "*" -> why
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{nonPersonal: map[string]string{}}
}

// Register adds a holder. Erasure runs holders in the order SetErasureOrder gives, or
// else in the reverse order of registration.
func (r *Registry) Register(h Holder) {
	name := h.Declaration().Name
	for _, o := range r.holders {
		if o.Declaration().Name == name {
			panic("datamap: holder registered twice: " + name)
		}
	}
	r.holders = append(r.holders, h)
}

// DeclareNonPersonal records that a table (or every table with the prefix, when the
// name ends in "*") holds no personal data, and why.
func (r *Registry) DeclareNonPersonal(table, why string) {
	r.nonPersonal[table] = why
}

// NonPersonal returns the tables (or prefixes ending in "*") declared to hold no
// personal data, with the reason.
func (r *Registry) NonPersonal() map[string]string { return maps.Clone(r.nonPersonal) }

// Holders returns the holders in registration order.
func (r *Registry) Holders() []Holder { return slices.Clone(r.holders) }

// Holder returns the holder with the given name.
func (r *Registry) Holder(name string) (Holder, bool) {
	for _, h := range r.holders {
		if h.Declaration().Name == name {
			return h, true
		}
	}
	return nil, false
}

func (r *Registry) nonPersonalReason(table string) (string, bool) {
	if why, ok := r.nonPersonal[table]; ok {
		return why, true
	}
	for k, why := range r.nonPersonal {
		if strings.HasSuffix(k, "*") && strings.HasPrefix(table, strings.TrimSuffix(k, "*")) {
			return why, true
		}
	}
	return "", false
}

// Coverage compares the registry with the live schema and returns one line for every
// table or column that is neither declared by a holder nor marked as holding no
// personal data, and for every declaration that names something the schema lacks.
func (r *Registry) Coverage(ctx context.Context, db *store.DB) ([]string, error) {
	cols, err := db.Columns(ctx)
	if err != nil {
		return nil, err
	}
	declared := map[string]map[string]Column{}
	for _, h := range r.holders {
		for _, t := range h.Declaration().Tables {
			if declared[t.Name] == nil {
				declared[t.Name] = map[string]Column{}
			}
			for _, c := range t.Columns {
				declared[t.Name][c.Name] = c
			}
		}
	}
	var problems []string
	live := map[string]map[string]bool{}
	for _, c := range cols {
		if live[c.Table] == nil {
			live[c.Table] = map[string]bool{}
		}
		live[c.Table][c.Name] = true
		if _, ok := r.nonPersonalReason(c.Table); ok {
			continue
		}
		d, ok := declared[c.Table][c.Name]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("%s.%s: not declared by any holder", c.Table, c.Name))
		case len(d.Categories) == 0 && d.NotPersonal == "":
			problems = append(problems, fmt.Sprintf("%s.%s: declared without categories or a reason it holds no personal data", c.Table, c.Name))
		case len(d.Categories) > 0 && !d.Sealed && d.Plain == "":
			problems = append(problems, fmt.Sprintf("%s.%s: personal data, neither sealed nor with a reason it is kept plain", c.Table, c.Name))
		}
	}
	for t, cs := range declared {
		for c := range cs {
			if !live[t][c] {
				problems = append(problems, fmt.Sprintf("%s.%s: declared but not in the schema", t, c))
			}
		}
	}
	sort.Strings(problems)
	return problems, nil
}

// Categories returns the sorted data categories a declaration covers.
func (d Declaration) Categories() []string {
	set := map[string]bool{}
	for _, t := range d.Tables {
		for _, c := range t.Columns {
			for _, cat := range c.Categories {
				set[cat] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// TableNames returns the names of the tables a declaration covers.
func (d Declaration) TableNames() []string {
	out := make([]string, len(d.Tables))
	for i, t := range d.Tables {
		out[i] = t.Name
	}
	return out
}
