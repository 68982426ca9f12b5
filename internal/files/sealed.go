package files

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"

	"steward/internal/store"
	"steward/internal/vault"
)

// Labels of the sealed columns. A file's name, type and checksum are sealed under its
// owner's key, the key its content is encrypted under. An access's address is sealed
// under the key of whoever made it: the owner, or another member who was refused.
const (
	labelName        = "files.name"
	labelContentType = "files.content_type"
	labelSHA256      = "files.sha256"
	labelIP          = "file_access_log.ip"
)

// open opens the file's sealed columns with its owner's key.
func (f *File) open(key *vault.Key) error {
	for _, c := range []struct {
		label string
		v     *string
	}{{labelName, &f.Name}, {labelContentType, &f.ContentType}, {labelSHA256, &f.SHA256}} {
		var err error
		if *c.v, err = key.OpenText(c.label, *c.v); err != nil {
			return err
		}
	}
	return nil
}

// unwrap opens a key read with a row; a NULL epoch is a subject without one.
func (s *Service) unwrap(subjectID string, wrapped []byte, epoch sql.NullInt64) (*vault.Key, error) {
	if !epoch.Valid {
		return nil, fmt.Errorf("%w: %s", vault.ErrNoKey, subjectID)
	}
	return s.vault.Unwrap(subjectID, wrapped, epoch.Int64)
}

// sealBatch is how many rows SealLegacy seals in one transaction.
const sealBatch = 1000

// SealLegacy seals what an earlier release stored in plain text (rows whose sealed
// column is NULL): files' names, types and checksums under their owner's key, and the
// access log's addresses under their actor's key. It runs at start, before requests are
// served, and returns how many rows it sealed. A file whose owner has no key any more
// is left to the erasure under way, which deletes it; an address whose actor has no key
// (no account any more) is not kept.
func (s *Service) SealLegacy(ctx context.Context) (int, error) {
	files, err := sealLegacy(ctx, s, legacy{
		table: "files", idType: "text", cols: []string{"name", "content_type", "sha256"},
		query: `SELECT f.id, f.owner_id, f.name, f.content_type, f.sha256, ` + vault.KeyColumns("k") + ` FROM files f ` +
			vault.KeyJoin("k", "f.owner_id") + ` WHERE f.sealed IS NULL AND f.id > $1 ORDER BY f.id LIMIT $2`,
		seal: func(key *vault.Key, v []string) ([]string, bool) {
			if key == nil {
				return nil, false
			}
			return []string{key.SealText(labelName, v[0]), key.SealText(labelContentType, v[1]), sealOptional(key, labelSHA256, v[2])}, true
		},
	}, "")
	if err != nil {
		return files, err
	}
	log, err := sealLegacy(ctx, s, legacy{
		table: "file_access_log", idType: "bigint", cols: []string{"ip"},
		query: `SELECT l.id, COALESCE(l.actor_id, ''), l.ip, ` + vault.KeyColumns("k") + ` FROM file_access_log l ` +
			vault.KeyJoin("k", "l.actor_id") + ` WHERE l.sealed IS NULL AND l.id > $1 ORDER BY l.id LIMIT $2`,
		seal: func(key *vault.Key, v []string) ([]string, bool) {
			if key == nil {
				return []string{""}, true
			}
			return []string{sealOptional(key, labelIP, v[0])}, true
		},
	}, int64(0))
	return files + log, err
}

// sealOptional seals a value of a NOT NULL column, "" staying "".
func sealOptional(key *vault.Key, label, v string) string {
	if v == "" {
		return ""
	}
	return key.SealText(label, v)
}

// legacy says how to seal one table's plain rows.
type legacy struct {
	table  string
	idType string   // the id column's type on PostgreSQL
	cols   []string // the columns sealed
	// query selects, after the cursor ($1) and up to $2 rows in id order, each row's
	// id, the subject whose key seals it, the plain values of cols and the subject's
	// key columns.
	query string
	// seal gives the sealed values of cols (key is nil for a subject without one), or
	// false to leave the row as it is.
	seal func(key *vault.Key, plain []string) ([]string, bool)
}

// sealLegacy seals a table's plain rows, sealBatch a transaction, and returns how many
// it sealed. A row sealed meanwhile (by another node starting too) is left as it is.
func sealLegacy[ID int64 | string](ctx context.Context, s *Service, l legacy, after ID) (int, error) {
	total := 0
	for {
		n, last, more, err := sealLegacyBatch(ctx, s, l, after)
		total += n
		if err != nil {
			return total, fmt.Errorf("files: seal %s: %w", l.table, err)
		}
		if !more {
			return total, nil
		}
		after = last
	}
}

func sealLegacyBatch[ID int64 | string](ctx context.Context, s *Service, l legacy, after ID) (n int, last ID, more bool, err error) {
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		n, more = 0, false
		rows, err := tx.QueryContext(ctx, l.query, after, sealBatch)
		if err != nil {
			return err
		}
		var ids []ID
		sealed := make([][]string, len(l.cols)) // by column
		keys := map[string]*vault.Key{}
		count := 0
		for rows.Next() {
			var id ID
			var subject string
			var wrapped []byte
			var epoch sql.NullInt64
			plain := make([]string, len(l.cols))
			dest := []any{&id, &subject}
			for i := range plain {
				dest = append(dest, &plain[i])
			}
			if err := rows.Scan(append(dest, &wrapped, &epoch)...); err != nil {
				rows.Close()
				return err
			}
			count++
			last = id
			key := keys[subject]
			if key == nil && epoch.Valid {
				if key, err = s.vault.Unwrap(subject, wrapped, epoch.Int64); err != nil {
					rows.Close()
					return err
				}
				keys[subject] = key
			}
			v, ok := l.seal(key, plain)
			if !ok {
				continue
			}
			ids = append(ids, id)
			for i := range v {
				sealed[i] = append(sealed[i], v[i])
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		more = count == sealBatch
		if len(ids) == 0 {
			return nil
		}
		n = len(ids)
		set := make([]string, len(l.cols))
		if tx.Dialect() == store.Postgres {
			// One statement of arrays: a row at a time costs a round trip each.
			arrays, names := []string{"$1::" + l.idType + "[]"}, []string{"id"}
			args := []any{ids}
			for i, c := range l.cols {
				set[i] = c + " = u.c" + strconv.Itoa(i)
				arrays = append(arrays, "$"+strconv.Itoa(i+2)+"::text[]")
				names = append(names, "c"+strconv.Itoa(i))
				args = append(args, sealed[i])
			}
			// The range of ids keeps the plan to the batch's rows: without it the planner
			// may hash every plain row at each batch.
			args = append(args, ids[0], ids[len(ids)-1])
			_, err := tx.ExecContext(ctx, `UPDATE `+l.table+` SET `+strings.Join(set, ", ")+`, sealed = 1 FROM unnest(`+strings.Join(arrays, ", ")+
				`) AS u(`+strings.Join(names, ", ")+`) WHERE `+l.table+`.id = u.id AND `+l.table+`.id BETWEEN $`+strconv.Itoa(len(args)-1)+` AND $`+strconv.Itoa(len(args))+
				` AND `+l.table+`.sealed IS NULL`, args...)
			return err
		}
		for i, c := range l.cols {
			set[i] = c + " = $" + strconv.Itoa(i+1)
		}
		st, err := tx.SQL().PrepareContext(ctx, s.db.Rebind(`UPDATE `+l.table+` SET `+strings.Join(set, ", ")+
			`, sealed = 1 WHERE id = $`+strconv.Itoa(len(l.cols)+1)+` AND sealed IS NULL`))
		if err != nil {
			return err
		}
		defer st.Close()
		args := make([]any, len(l.cols)+1)
		for r, id := range ids {
			for i := range l.cols {
				args[i] = sealed[i][r]
			}
			args[len(l.cols)] = id
			if _, err := st.ExecContext(ctx, args...); err != nil {
				return err
			}
		}
		return nil
	})
	return n, last, more, err
}
