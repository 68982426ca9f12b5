package newsletter

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"

	"steward/internal/store"
	"steward/internal/vault"
)

// sealedSub is a subscription's values sealed under its subject's key.
type sealedSub struct{ email, first, last, company string }

// sealSub seals a subscription's values. An empty company stays empty (the column is
// NOT NULL, and "no company" tells nothing).
func sealSub(k *vault.Key, sub Subscription) sealedSub {
	x := sealedSub{email: k.SealText(labelEmail, sub.Email), first: k.SealText(labelFirstName, sub.FirstName),
		last: k.SealText(labelLastName, sub.LastName)}
	if sub.Company != "" {
		x.company = k.SealText(labelCompany, sub.Company)
	}
	return x
}

// open opens a subscription's values.
func (x sealedSub) open(k *vault.Key) (Subscription, error) {
	var sub Subscription
	var err error
	for _, f := range []struct {
		label, sealed string
		out           *string
	}{
		{labelEmail, x.email, &sub.Email}, {labelFirstName, x.first, &sub.FirstName},
		{labelLastName, x.last, &sub.LastName}, {labelCompany, x.company, &sub.Company},
	} {
		if *f.out, err = k.OpenText(f.label, f.sealed); err != nil {
			return Subscription{}, err
		}
	}
	return sub, nil
}

// keyOf opens a subject's key read with its row (vault.KeyColumns); nil when the
// subject has none (its erasure has begun: the key goes first).
func (s *Service) keyOf(subject string, wrapped []byte, epoch sql.NullInt64) (*vault.Key, error) {
	if !epoch.Valid {
		return nil, nil
	}
	return s.vault.Unwrap(subject, wrapped, epoch.Int64)
}

// keysOf reads and opens the keys of the subjects; a subject without one (its erasure
// has begun) is left out.
func (s *Service) keysOf(ctx context.Context, q store.Querier, subjects []string) (map[string]*vault.Key, error) {
	keys := map[string]*vault.Key{}
	err := s.inChunks(subjects, func(chunk []string) error {
		in, args := s.db.In("subject_id", 1, chunk)
		rows, err := q.QueryContext(ctx, `SELECT subject_id, wrapped, epoch FROM vault_keys WHERE `+in, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var subject string
			var wrapped []byte
			var epoch int64
			if err := rows.Scan(&subject, &wrapped, &epoch); err != nil {
				return err
			}
			if keys[subject], err = s.vault.Unwrap(subject, wrapped, epoch); err != nil {
				return err
			}
		}
		return rows.Err()
	})
	return keys, err
}

// moveSubject makes the subscriptions of subject from those of subject to (an account
// that proved their address), in tx: their values and their links' evidence are
// opened with from's key and sealed again under to's, their deliveries, opens and
// consent ledger follow, and, when from is a subscriber's own subject (the id of its
// row), from's key is shredded: nothing is left under it, and what it sealed before
// (in dead rows, logs, backups) opens no more once the key epoch has passed.
func (s *Service) moveSubject(ctx context.Context, tx *store.Tx, from, to string) error {
	fail := func(err error) error { return fmt.Errorf("newsletter: link: %w", err) }
	fromKey, err := s.vault.KeyIn(ctx, tx, from, false)
	if err != nil {
		return fail(err)
	}
	toKey, err := s.vault.KeyIn(ctx, tx, to, true)
	if err != nil {
		return fail(err)
	}
	type row struct {
		id string
		v  sealedSub
	}
	var subs []row
	rows, err := tx.QueryContext(ctx, `SELECT id, email, first_name, last_name, company FROM subscribers WHERE subject_id = $1`, from)
	if err != nil {
		return fail(err)
	}
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.v.email, &r.v.first, &r.v.last, &r.v.company); err != nil {
			rows.Close()
			return fail(err)
		}
		subs = append(subs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	type link struct{ id, evidence string }
	var links []link
	rows, err = tx.QueryContext(ctx, `SELECT t.id, t.evidence FROM subscriber_tokens t JOIN subscribers s ON s.id = t.subscriber_id
		WHERE s.subject_id = $1`, from)
	if err != nil {
		return fail(err)
	}
	for rows.Next() {
		var l link
		if err := rows.Scan(&l.id, &l.evidence); err != nil {
			rows.Close()
			return fail(err)
		}
		links = append(links, l)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	own := false
	for _, r := range subs {
		own = own || r.id == from
		sub, err := r.v.open(fromKey)
		if err != nil {
			return fail(err)
		}
		v := sealSub(toKey, sub)
		if _, err := tx.ExecContext(ctx, `UPDATE subscribers SET subject_id = $1, account_id = $1, email = $2, first_name = $3,
			last_name = $4, company = $5 WHERE id = $6`, to, v.email, v.first, v.last, v.company, r.id); err != nil {
			return fail(err)
		}
	}
	for _, l := range links {
		ev, err := fromKey.OpenText(labelEvidence, l.evidence)
		if err != nil {
			return fail(err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE subscriber_tokens SET evidence = $1 WHERE id = $2`, toKey.SealText(labelEvidence, ev), l.id); err != nil {
			return fail(err)
		}
	}
	for _, q := range []string{
		`UPDATE campaign_deliveries SET subject_id = $1 WHERE subject_id = $2`,
		`UPDATE campaign_opens SET subject_id = $1 WHERE subject_id = $2`,
	} {
		if _, err := tx.ExecContext(ctx, q, to, from); err != nil {
			return fail(err)
		}
	}
	// The ledger moves while from's key still exists: what it seals under it can be
	// sealed again under to's.
	if err := s.consent.Rekey(ctx, tx, from, to); err != nil {
		return err
	}
	if !own {
		return nil
	}
	return s.vault.Shred(ctx, tx, from)
}

// sealLegacyBatch is how many subscribers of an earlier release one transaction seals.
const sealLegacyBatch = 500

// SealLegacy seals the subscribers an earlier release stored in plain text (listed in
// subscribers_unsealed by the migration that brought sealing), their links' evidence
// and their rows of the kept audience, in batches of a transaction each, and returns
// how many it sealed. A subscriber without an account gets a data key of its own. It
// runs at start, before requests are served; nodes starting together share the work
// (a batch seals only the rows it took off the list).
func (s *Service) SealLegacy(ctx context.Context) (int, error) {
	total := 0
	for {
		n, more, err := s.sealLegacyBatch(ctx)
		total += n
		if err != nil {
			return total, fmt.Errorf("newsletter: seal: %w", err)
		}
		if !more {
			return total, nil
		}
	}
}

func (s *Service) sealLegacyBatch(ctx context.Context) (sealed int, more bool, err error) {
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		sealed, more = 0, false
		ids, err := store.Strings(ctx, tx, `SELECT id FROM subscribers_unsealed ORDER BY id LIMIT $1`, sealLegacyBatch)
		if err != nil || len(ids) == 0 {
			return err
		}
		more = true
		// Only what this transaction takes off the list is sealed here: another node
		// sealing the same rows waits for it, then finds them gone.
		in, args := s.db.In("id", 1, ids)
		if ids, err = store.Strings(ctx, tx, `DELETE FROM subscribers_unsealed WHERE `+in+` RETURNING id`, args...); err != nil || len(ids) == 0 {
			return err
		}
		type row struct {
			id, subject string
			sub         Subscription
			wrapped     []byte
			epoch       sql.NullInt64
		}
		var subs []row
		in, args = s.db.In("s.id", 1, ids)
		rows, err := tx.QueryContext(ctx, `SELECT s.id, s.subject_id, s.email, s.first_name, s.last_name, s.company, `+vault.KeyColumns("k")+`
			FROM subscribers s `+vault.KeyJoin("k", "s.subject_id")+` WHERE `+in, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.id, &r.subject, &r.sub.Email, &r.sub.FirstName, &r.sub.LastName, &r.sub.Company, &r.wrapped, &r.epoch); err != nil {
				rows.Close()
				return err
			}
			subs = append(subs, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		// Keys: the subject's if it has one (an account's), else a new one, made in bulk.
		keys := map[string]*vault.Key{}
		var made []string
		var keyRows []any
		mine := map[string][]byte{}
		for _, r := range subs {
			if keys[r.subject] != nil {
				continue
			}
			if r.epoch.Valid {
				if keys[r.subject], err = s.vault.Unwrap(r.subject, r.wrapped, r.epoch.Int64); err != nil {
					return err
				}
				continue
			}
			k, kr, err := s.vault.NewKey(r.subject)
			if err != nil {
				return err
			}
			keys[r.subject] = k
			made = append(made, r.subject)
			mine[r.subject] = kr[1].([]byte)
			keyRows = append(keyRows, kr...)
		}
		if len(made) > 0 {
			if err := tx.InsertRows(ctx, `INSERT INTO vault_keys (subject_id, wrapped, epoch, created_at) VALUES `, 4, keyRows,
				" ON CONFLICT (subject_id) DO NOTHING"); err != nil {
				return err
			}
			// A key another transaction stored first is the one that counts.
			in, args := s.db.In("subject_id", 1, made)
			rows, err := tx.QueryContext(ctx, `SELECT subject_id, wrapped, epoch FROM vault_keys WHERE `+in, args...)
			if err != nil {
				return err
			}
			for rows.Next() {
				var subject string
				var wrapped []byte
				var epoch int64
				if err := rows.Scan(&subject, &wrapped, &epoch); err != nil {
					rows.Close()
					return err
				}
				if !bytes.Equal(wrapped, mine[subject]) {
					if keys[subject], err = s.vault.Unwrap(subject, wrapped, epoch); err != nil {
						rows.Close()
						return err
					}
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
		}
		// The links' evidence, under the key of their subscriber's subject.
		subjectOf := map[string]string{}
		for _, r := range subs {
			subjectOf[r.id] = r.subject
		}
		type link struct{ id, evidence string }
		var links []link
		in, args = s.db.In("subscriber_id", 1, ids)
		rows, err = tx.QueryContext(ctx, `SELECT id, subscriber_id, evidence FROM subscriber_tokens WHERE `+in, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var l link
			var sub string
			if err := rows.Scan(&l.id, &sub, &l.evidence); err != nil {
				rows.Close()
				return err
			}
			l.evidence = keys[subjectOf[sub]].SealText(labelEvidence, l.evidence)
			links = append(links, l)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, l := range links {
			if _, err := tx.ExecContext(ctx, `UPDATE subscriber_tokens SET evidence = $1 WHERE id = $2`, l.evidence, l.id); err != nil {
				return err
			}
		}
		subjects := make([]string, 0, len(subs))
		cols := make([][]string, 5)
		for _, r := range subs {
			v := sealSub(keys[r.subject], r.sub)
			for i, x := range []string{r.id, v.email, v.first, v.last, v.company} {
				cols[i] = append(cols[i], x)
			}
			subjects = append(subjects, r.subject)
		}
		if s.db.Dialect == store.Postgres {
			// One statement of arrays: a round trip per row would take minutes for a
			// large list.
			if _, err := tx.ExecContext(ctx, `UPDATE subscribers s SET email = u.email, first_name = u.first, last_name = u.last, company = u.company
				FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS u(id, email, first, last, company)
				WHERE s.id = u.id`, cols[0], cols[1], cols[2], cols[3], cols[4]); err != nil {
				return err
			}
		} else {
			for i := range cols[0] {
				if _, err := tx.ExecContext(ctx, `UPDATE subscribers SET email = $1, first_name = $2, last_name = $3, company = $4 WHERE id = $5`,
					cols[1][i], cols[2][i], cols[3][i], cols[4][i], cols[0][i]); err != nil {
					return err
				}
			}
		}
		sealed = len(subs)
		// The kept audience's copies are made again from the sealed rows.
		return s.Refresh(ctx, tx, subjects...)
	})
	return sealed, more, err
}
