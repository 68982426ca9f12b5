package consent

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"steward/internal/store"
	"steward/internal/vault"
)

// labelEvidence binds a sealed evidence to its column. The evidence of an event is
// the request's address and browser, the sender of a mail, what an import's file said:
// it is sealed whole, as JSON, under the subject's data key.
const labelEvidence = "consent_events.evidence"

// plainEvidence is the condition true for an event an earlier release stored with its
// evidence in plain JSON (a sealed value is base64 and never begins with "{"). The
// partial index consent_events_plain holds these rows only, so finding them at start
// costs nothing once they are sealed.
const plainEvidence = `(substr(evidence, 1, 1) = '{' OR evidence = 'null')`

// sealEvidence encodes and seals an evidence under the subject's key.
func sealEvidence(key *vault.Key, evidence map[string]string) string {
	if evidence == nil {
		evidence = map[string]string{}
	}
	b, _ := json.Marshal(evidence) // a map of strings always encodes
	return key.SealText(labelEvidence, string(b))
}

// openEvidence opens a sealed evidence.
func openEvidence(key *vault.Key, sealed string) (map[string]string, error) {
	plain, err := key.OpenText(labelEvidence, sealed)
	if err != nil {
		return nil, fmt.Errorf("consent: evidence: %w", err)
	}
	ev := map[string]string{}
	if err := json.Unmarshal([]byte(plain), &ev); err != nil {
		return nil, fmt.Errorf("consent: evidence of %s: %w", key.Subject(), err)
	}
	return ev, nil
}

// keyColumns read an event's subject's key with it, joined as k.
var keyColumns = vault.KeyColumns("k")

// rowKey opens the key read with a row; keys caches the keys already opened by
// subject, as a query of many rows of one subject repeats the same key.
func (s *Service) rowKey(keys map[string]*vault.Key, subjectID string, wrapped []byte, epoch sql.NullInt64) (*vault.Key, error) {
	if k := keys[subjectID]; k != nil {
		return k, nil
	}
	if !epoch.Valid {
		return nil, fmt.Errorf("consent: %w: %s", vault.ErrNoKey, subjectID)
	}
	k, err := s.vault.Unwrap(subjectID, wrapped, epoch.Int64)
	if err != nil {
		return nil, fmt.Errorf("consent: %w", err)
	}
	keys[subjectID] = k
	return k, nil
}

// keysIn returns the data keys of subjects, in tx, making those that have none: a
// subscriber gets one with the first decision it makes. Keys are read, made and stored
// in bulk; a key another transaction stored first is the one returned.
func (s *Service) keysIn(ctx context.Context, tx *store.Tx, subjects []string) (map[string]*vault.Key, error) {
	out := make(map[string]*vault.Key, len(subjects))
	seen := make(map[string]bool, len(subjects))
	var ids []string
	for _, id := range subjects {
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	if err := s.readKeys(ctx, tx, ids, out); err != nil {
		return nil, err
	}
	var missing []string
	var made []any // vault_keys rows
	for _, id := range ids {
		if out[id] != nil {
			continue
		}
		k, row, err := s.vault.NewKey(id)
		if err != nil {
			return nil, fmt.Errorf("consent: keys: %w", err)
		}
		out[id] = k
		missing = append(missing, id)
		made = append(made, row...)
	}
	if len(missing) == 0 {
		return out, nil
	}
	if tx.Dialect() == store.SQLite {
		// The transaction holds the only writer: no key can have been stored since
		// they were read.
		if err := tx.InsertRows(ctx, `INSERT INTO vault_keys (subject_id, wrapped, epoch, created_at) VALUES `, 4, made, ""); err != nil {
			return nil, fmt.Errorf("consent: keys: %w", err)
		}
		return out, nil
	}
	// PostgreSQL: one statement of arrays, which says which keys it stored; the others
	// were stored by another transaction meanwhile, and are read.
	cols := [4][]any{}
	for i, v := range made {
		cols[i%4] = append(cols[i%4], v)
	}
	wrapped := make([][]byte, len(missing))
	epochs, created := make([]int64, len(missing)), make([]int64, len(missing))
	for i := range missing {
		wrapped[i], epochs[i], created[i] = cols[1][i].([]byte), cols[2][i].(int64), cols[3][i].(int64)
	}
	stored, err := store.Strings(ctx, tx, `INSERT INTO vault_keys (subject_id, wrapped, epoch, created_at)
		SELECT * FROM unnest($1::text[], $2::bytea[], $3::bigint[], $4::bigint[]) ON CONFLICT (subject_id) DO NOTHING RETURNING subject_id`,
		missing, wrapped, epochs, created)
	if err != nil {
		return nil, fmt.Errorf("consent: keys: %w", err)
	}
	if len(stored) == len(missing) {
		return out, nil
	}
	isStored := make(map[string]bool, len(stored))
	for _, id := range stored {
		isStored[id] = true
	}
	var lost []string
	for _, id := range missing {
		if !isStored[id] {
			lost = append(lost, id)
			delete(out, id)
		}
	}
	return out, s.readKeys(ctx, tx, lost, out)
}

// readKeys reads the keys of ids that exist into out.
func (s *Service) readKeys(ctx context.Context, tx *store.Tx, ids []string, out map[string]*vault.Key) error {
	chunk := keyChunk
	if tx.Dialect() == store.Postgres {
		chunk = max(len(ids), 1) // one array parameter
	}
	for lo := 0; lo < len(ids); lo += chunk {
		in, args := s.db.In("subject_id", 1, ids[lo:min(lo+chunk, len(ids))])
		rows, err := tx.QueryContext(ctx, `SELECT subject_id, wrapped, epoch FROM vault_keys WHERE `+in, args...)
		if err != nil {
			return fmt.Errorf("consent: keys: %w", err)
		}
		for rows.Next() {
			var id string
			var wrapped []byte
			var epoch int64
			if err := rows.Scan(&id, &wrapped, &epoch); err != nil {
				rows.Close()
				return fmt.Errorf("consent: keys: %w", err)
			}
			if out[id], err = s.vault.Unwrap(id, wrapped, epoch); err != nil {
				rows.Close()
				return fmt.Errorf("consent: keys: %w", err)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("consent: keys: %w", err)
		}
	}
	return nil
}

// keyChunk is how many keys readKeys reads in one statement on SQLite.
const keyChunk = 500

// sealBatch is how many events an earlier release left in plain text SealLegacy seals
// in one transaction.
const sealBatch = 1000

// SealLegacy seals the evidence an earlier release stored in plain JSON, sealBatch
// events a transaction, and returns how many it sealed. A subject without a key yet (a
// subscriber) gets one. It runs at start, before requests are served; on PostgreSQL
// nodes starting together share the work (an event sealed meanwhile is left as it is).
func (s *Service) SealLegacy(ctx context.Context) (int, error) {
	total := 0
	var after int64
	for {
		type plain struct {
			id              int64
			subject, sealed string
		}
		var batch []plain
		err := s.db.InTx(ctx, func(tx *store.Tx) error {
			batch = batch[:0]
			rows, err := tx.QueryContext(ctx, `SELECT id, subject_id, evidence FROM consent_events WHERE `+plainEvidence+
				` AND id > $1 ORDER BY id LIMIT $2`, after, sealBatch)
			if err != nil {
				return err
			}
			subjects := make([]string, 0, sealBatch)
			for rows.Next() {
				var p plain
				if err := rows.Scan(&p.id, &p.subject, &p.sealed); err != nil {
					rows.Close()
					return err
				}
				batch = append(batch, p)
				subjects = append(subjects, p.subject)
			}
			rows.Close()
			if err := rows.Err(); err != nil || len(batch) == 0 {
				return err
			}
			keys, err := s.keysIn(ctx, tx, subjects)
			if err != nil {
				return err
			}
			ids, sealed := make([]int64, len(batch)), make([]string, len(batch))
			for i, p := range batch {
				ids[i], sealed[i] = p.id, keys[p.subject].SealText(labelEvidence, p.sealed)
			}
			if tx.Dialect() == store.Postgres {
				// The range of ids keeps the plan to the batch's rows: without it the
				// planner may hash every plain row at each batch.
				_, err := tx.ExecContext(ctx, `UPDATE consent_events SET evidence = u.ev FROM unnest($1::bigint[], $2::text[]) AS u(id, ev)
					WHERE consent_events.id = u.id AND consent_events.id BETWEEN $3 AND $4 AND `+plainEvidence, ids, sealed, ids[0], ids[len(ids)-1])
				return err
			}
			st, err := tx.SQL().PrepareContext(ctx, s.db.Rebind(`UPDATE consent_events SET evidence = $1 WHERE id = $2 AND `+plainEvidence))
			if err != nil {
				return err
			}
			defer st.Close()
			for i := range ids {
				if _, err := st.ExecContext(ctx, sealed[i], ids[i]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("consent: seal: %w", err)
		}
		total += len(batch)
		if len(batch) < sealBatch {
			return total, nil
		}
		after = batch[len(batch)-1].id
	}
}
