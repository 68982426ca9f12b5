package vault

import (
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"time"

	"steward/internal/store"
)

// Rotation. One row (kek_state) holds the epoch every data key is wrapped at and,
// while a rotation runs, the target epoch. A rotation is begun by the first node that
// finds the epoch older than Config.Epoch (a compare-and-set on the row, with the
// next KEK escrowed in the same transaction); from then on every node wraps new keys
// at the target and rewraps existing ones in batches (each a transaction, each row
// changed only if still at its old epoch, so nodes and restarts can share the work).
// Once Grace has passed since the beginning and no key is left below the target, the
// node ends the rotation in the row and rewrites its key file with the next KEK,
// destroying the old one; every other node does the same when it sees the row move,
// after rewrapping any key it wrapped late. A process killed at any point resumes:
// the row and each key's epoch say what is done, and the old KEK is destroyed only
// after the database says no key needs it.

// Run rotates keys on schedule until ctx ends, looking every Config.Poll.
func (v *Vault) Run(ctx context.Context) {
	t := time.NewTicker(v.cfg.Poll)
	defer t.Stop()
	for {
		if err := v.Step(ctx); err != nil && ctx.Err() == nil {
			v.log.Error("vault: key rotation", "err", err)
		}
		v.keys.sweep(v.now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Step does what the epoch needs now: follow another node's rotation, begin one that
// is due, rewrap keys, or end a rotation whose grace has passed.
func (v *Vault) Step(ctx context.Context) error {
	st, err := loadState(ctx, v.db)
	if err != nil {
		return fmt.Errorf("vault: key state: %w", err)
	}
	if st.epoch != v.current().epoch {
		return v.agree(ctx, st)
	}
	if st.target == st.epoch {
		if v.now().Sub(store.FromMillis(st.startedAt)) < v.cfg.Epoch {
			return nil
		}
		if st, err = v.begin(ctx, st); err != nil {
			return err
		}
	}
	v.mu.Lock()
	v.rotating = true
	v.mu.Unlock()
	if _, err := v.rewrap(ctx, st.target); err != nil {
		return err
	}
	if v.now().Sub(store.FromMillis(st.targetAt)) < v.cfg.Grace {
		return nil
	}
	return v.finish(ctx, st)
}

// RotateNow begins a rotation (unless one runs), rewraps every key and ends it once
// the grace has passed, waiting for it: `steward keys rotate`, and tests.
func (v *Vault) RotateNow(ctx context.Context) (int64, error) {
	st, err := loadState(ctx, v.db)
	if err != nil {
		return 0, fmt.Errorf("vault: key state: %w", err)
	}
	if st.epoch != v.current().epoch {
		if err := v.agree(ctx, st); err != nil {
			return 0, err
		}
	}
	if st.target == st.epoch {
		if st, err = v.begin(ctx, st); err != nil {
			return 0, err
		}
	}
	v.mu.Lock()
	v.rotating = true
	v.mu.Unlock()
	for {
		if _, err := v.rewrap(ctx, st.target); err != nil {
			return 0, err
		}
		if wait := v.cfg.Grace - v.now().Sub(store.FromMillis(st.targetAt)); wait > 0 {
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-time.After(min(wait, v.cfg.Poll)):
			}
			continue
		}
		if err := v.finish(ctx, st); err != nil {
			return 0, err
		}
		if e, _ := v.Epoch(); e == st.target {
			return e, nil
		}
	}
}

// begin starts a rotation to the next epoch, escrowing its KEK first.
func (v *Vault) begin(ctx context.Context, st state) (state, error) {
	next := v.current().Next()
	if err := v.escrow(ctx, next); err != nil {
		return st, err
	}
	ms := store.Millis(v.now())
	if _, err := v.db.ExecContext(ctx, `UPDATE kek_state SET target = $1, target_at = $2 WHERE id = 1 AND epoch = $3 AND target = $3`,
		next.epoch, ms, st.epoch); err != nil {
		return st, fmt.Errorf("vault: begin rotation: %w", err)
	}
	st, err := loadState(ctx, v.db) // another node may have begun it first
	if err != nil {
		return st, fmt.Errorf("vault: key state: %w", err)
	}
	if st.target != next.epoch {
		return st, fmt.Errorf("vault: rotation to epoch %d did not begin: the database says epoch %d, target %d", next.epoch, st.epoch, st.target)
	}
	v.log.Info("vault: key rotation begun", "epoch", st.epoch, "target", st.target)
	return st, nil
}

// finish ends a rotation once no key is left below the target, then destroys the
// node's old KEK.
func (v *Vault) finish(ctx context.Context, st state) error {
	next := v.current().Next()
	ended := false
	err := v.db.InTx(ctx, func(tx *store.Tx) error {
		var left int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM vault_keys WHERE epoch < $1`, st.target).Scan(&left); err != nil {
			return err
		}
		if left > 0 {
			return nil // wrapped late by a node: the next step rewraps them
		}
		res, err := tx.ExecContext(ctx, `UPDATE kek_state SET epoch = $1, key_id = $2, started_at = $3 WHERE id = 1 AND epoch = $4 AND target = $1`,
			st.target, next.id, store.Millis(v.now()), st.epoch)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		ended = n == 1
		if err != nil || !ended {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM kek_escrow WHERE epoch < $1 AND created_at < $2`,
			st.target, store.Millis(v.now().Add(-v.cfg.Retention)))
		return err
	})
	if err != nil {
		return fmt.Errorf("vault: end rotation: %w", err)
	}
	if !ended {
		return nil
	}
	return v.ratchet(next)
}

// rewrap rewraps every key below target at target, in batches, and returns how many
// it changed.
func (v *Vault) rewrap(ctx context.Context, target int64) (int, error) {
	to, err := v.aead(target)
	if err != nil {
		return 0, err
	}
	return rewrapAll(ctx, v.db, target, v.aead, to, v.afterBatch)
}

// rewrapAll walks vault_keys in key order and rewraps every key below target (opened
// by from) under to; each batch is a transaction and each row changes only if it is
// still at the epoch it was read at.
func rewrapAll(ctx context.Context, db *store.DB, target int64, from func(int64) (cipher.AEAD, error), to cipher.AEAD, after func(int)) (int, error) {
	total, last := 0, ""
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		done := false
		err := db.InTx(ctx, func(tx *store.Tx) error {
			rows, err := tx.QueryContext(ctx, `SELECT subject_id, wrapped, epoch FROM vault_keys
				WHERE subject_id > $1 AND epoch < $2 ORDER BY subject_id LIMIT $3`, last, target, rewrapBatch)
			if err != nil {
				return err
			}
			var subjects []string
			var olds []int64
			var news [][]byte
			for rows.Next() {
				var s string
				var w []byte
				var e int64
				if err := rows.Scan(&s, &w, &e); err != nil {
					rows.Close()
					return err
				}
				a, err := from(e)
				if err != nil {
					rows.Close()
					return err
				}
				data, err := unwrap(a, s, w)
				if err != nil {
					rows.Close()
					return err
				}
				subjects, olds, news = append(subjects, s), append(olds, e), append(news, wrap(to, s, data))
				clear(data)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			if len(subjects) == 0 {
				done = true
				return nil
			}
			last = subjects[len(subjects)-1]
			if db.Dialect == store.Postgres {
				_, err := tx.ExecContext(ctx, `UPDATE vault_keys k SET wrapped = u.w, epoch = $1
					FROM unnest($2::text[], $3::bytea[], $4::bigint[]) AS u(s, w, e)
					WHERE k.subject_id = u.s AND k.epoch = u.e`, target, subjects, news, olds)
				return err
			}
			stmt, err := tx.SQL().PrepareContext(ctx, `UPDATE vault_keys SET wrapped = ?1, epoch = ?2 WHERE subject_id = ?3 AND epoch = ?4`)
			if err != nil {
				return err
			}
			defer stmt.Close()
			for i, s := range subjects {
				if _, err := stmt.ExecContext(ctx, news[i], target, s, olds[i]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("vault: rewrap: %w", err)
		}
		if done {
			return total, nil
		}
		total += rewrapBatch
		if after != nil {
			after(total)
		}
	}
}

// Recover makes a database restored from a backup readable again on this node: it
// opens the escrowed KEK of the database's epoch with the operator's offline
// identities, checks that it leads to this node's key (the same deployment), and
// rewraps every data key at the node's epoch. A node without a key file takes the
// database's epoch and KEK. It returns the number of keys rewrapped.
func Recover(ctx context.Context, db *store.DB, keyFile string, ids Identities, now func() time.Time) (int, error) {
	st, err := loadState(ctx, db)
	if err != nil {
		return 0, fmt.Errorf("vault: recover: key state: %w", err)
	}
	var sealed []byte
	if err := db.QueryRowContext(ctx, `SELECT sealed FROM kek_escrow WHERE epoch = $1`, st.epoch).Scan(&sealed); err != nil {
		return 0, fmt.Errorf("vault: recover: no escrowed key for epoch %d in the database: it was made without --escrow-recipient, or its escrow expired: %w", st.epoch, err)
	}
	old, err := OpenEscrowed(ids, sealed)
	if err != nil {
		return 0, fmt.Errorf("vault: recover: %w", err)
	}
	if old.epoch != st.epoch || old.id != st.keyID {
		return 0, fmt.Errorf("vault: recover: the escrowed key is not the database's key of epoch %d", st.epoch)
	}
	node, err := ReadKEK(keyFile)
	switch {
	case errors.Is(err, errNotExist):
		node = old
		if err := WriteKEK(keyFile, node); err != nil {
			return 0, err
		}
	case err != nil:
		return 0, err
	case node.epoch < old.epoch:
		return 0, fmt.Errorf("vault: recover: this node's key (epoch %d) is older than the database's (%d): start the server instead", node.epoch, old.epoch)
	default:
		want, err := old.Forward(node.epoch)
		if err != nil {
			return 0, err
		}
		if want.id != node.id {
			return 0, fmt.Errorf("vault: recover: the database's keys do not lead to this node's key: the backup is another deployment's")
		}
	}
	from := func(e int64) (cipher.AEAD, error) {
		k, err := old.Forward(e)
		if err != nil {
			return nil, err
		}
		return gcm(k.key[:])
	}
	to, err := gcm(node.key[:])
	if err != nil {
		return 0, err
	}
	n, err := rewrapAll(ctx, db, node.epoch, from, to, nil)
	if err != nil {
		return n, err
	}
	ms := store.Millis(now())
	if _, err := db.ExecContext(ctx, `UPDATE kek_state SET epoch = $1, target = $1, key_id = $2, started_at = $3, target_at = $3 WHERE id = 1`,
		node.epoch, node.id, ms); err != nil {
		return n, fmt.Errorf("vault: recover: %w", err)
	}
	return n, nil
}
