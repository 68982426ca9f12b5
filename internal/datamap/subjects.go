package datamap

import (
	"context"
	"fmt"

	"steward/internal/store"
)

// AddressIndexed is a holder that keeps addresses together with their blind index
// (vault.Index.Address). The erasure ledger remembers an erased address by that index
// alone, so after a restore such a holder can say which subjects an erased address
// still has, without the address itself.
type AddressIndexed interface {
	// SubjectsByAddress returns the subjects of the rows whose address has one of the
	// blind indexes given, each once.
	SubjectsByAddress(ctx context.Context, q store.Querier, hashes []string) ([]string, error)
	// AddressesErased records, in tx, that the addresses with these blind indexes were
	// erased, as the holder's Erase would have (the newsletter keeps them suppressed).
	AddressesErased(ctx context.Context, tx *store.Tx, hashes []string) error
}

// EachSubjectID calls fn once for every subject id that any declared table names in
// its subject column (Table.Subject): every subject the database holds anything of.
// Memory grows with the number of distinct subjects (to call fn once for each).
func (r *Registry) EachSubjectID(ctx context.Context, q store.Querier, fn func(id string) error) error {
	seen := map[string]bool{}
	done := map[string]bool{}
	for _, h := range r.holders {
		for _, t := range h.Declaration().Tables {
			if t.Subject == "" || done[t.Name] {
				continue
			}
			done[t.Name] = true
			col := store.QuoteIdent(t.Subject)
			ids, err := store.Strings(ctx, q, fmt.Sprintf("SELECT DISTINCT %s FROM %s WHERE %s IS NOT NULL",
				col, store.QuoteIdent(t.Name), col))
			if err != nil {
				return fmt.Errorf("datamap: subjects of %s: %w", t.Name, err)
			}
			for _, id := range ids {
				if seen[id] {
					continue
				}
				seen[id] = true
				if err := fn(id); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
