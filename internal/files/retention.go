package files

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"steward/internal/store"
)

// DeleteAccessBefore deletes the access log's entries written before before, and
// returns how many. The entries of the subjects in keep (a legal hold keeps their
// files' data), as owner or as actor, stay.
func (s *Service) DeleteAccessBefore(ctx context.Context, before time.Time, keep []string) (int, error) {
	var n int64
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		if len(keep) == 0 {
			res, err := tx.ExecContext(ctx, `DELETE FROM file_access_log WHERE at < $1`, store.Millis(before))
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT id, owner_id, COALESCE(actor_id, '') FROM file_access_log WHERE at < $1`, store.Millis(before))
		if err != nil {
			return err
		}
		var ids []int64
		for rows.Next() {
			var id int64
			var owner, actor string
			if err := rows.Scan(&id, &owner, &actor); err != nil {
				rows.Close()
				return err
			}
			if !slices.Contains(keep, owner) && !slices.Contains(keep, actor) {
				ids = append(ids, id)
			}
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `DELETE FROM file_access_log WHERE id = $1`, id); err != nil {
				return err
			}
		}
		n = int64(len(ids))
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("files: delete access log: %w", err)
	}
	return int(n), nil
}
