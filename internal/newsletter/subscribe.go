package newsletter

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"

	"steward/internal/mail"
	"steward/internal/store"
	"steward/internal/vault"
)

// subscribeBatch is the most subscriptions one transaction takes.
const subscribeBatch = 256

// pendingSub is one Subscribe call waiting for the transaction that stores it. What
// can be made before the writer is taken is: the blind index of the address, and for
// a new address its row's id, the data key of that subject and the values sealed
// under it.
type pendingSub struct {
	sub       Subscription
	evidence  string // JSON, sealed under the subject's key when stored
	tokenHash string
	hash      string // AddressHash of the address
	mail      mail.Prepared
	now       int64
	newID     string     // the id (and subject) of the subscriber, if the address is new
	key       *vault.Key // newID's data key
	keyRow    []any      // its vault_keys row
	sealed    sealedSub  // sub sealed under key
	sealedEv  string     // evidence sealed under key
	id        string     // the subscriber's, once known
	subject   string     // the subscriber's subject (its id, or the account it joined), once known
	err       error
	wake      chan bool // true: stored (err says how); false: lead
	answered  bool      // wake was sent true (by the leader storing it)
}

// groupCommit stores concurrent subscriptions together (group commit). A caller leads
// if fewer than max callers lead, and otherwise queues and waits. A leader stores its
// own subscription with everything queued (up to subscribeBatch) in one transaction,
// then hands the lead to the first caller still queued. A lone caller stores its own at
// once; under load one transaction carries many, and SQLite's single writer is taken
// once per batch instead of once per request. On PostgreSQL a few batches run at once.
type groupCommit struct {
	mu      sync.Mutex
	queue   []*pendingSub
	leaders int // callers storing a batch now; the queue is empty unless it is max
	max     int
}

// Subscribe starts a double opt-in: a pending subscriber and a confirmation mail.
// Nothing is sent but that mail until the link is opened. The answer is the same
// whether the address is new, pending or already confirmed (a confirmed one gets the
// link too, which changes nothing), so subscribing reveals nothing. It returns once the
// subscription is committed.
func (s *Service) Subscribe(ctx context.Context, sub Subscription, evidence map[string]string) error {
	sub, err := sub.check()
	if err != nil {
		return err
	}
	ev, _ := json.Marshal(evidence)
	var raw [32]byte
	_, _ = rand.Read(raw[:])
	token := base64.RawURLEncoding.EncodeToString(raw[:])
	sum := sha256.Sum256([]byte(token))
	m, err := s.outbox.Prepare(mail.Transactional{To: sub.Email, Template: mail.NewsletterConfirm,
		Data: map[string]string{"Name": sub.FirstName, "Link": s.baseURL + "/newsletter/confirm?token=" + token}})
	if err != nil {
		return err
	}
	id := s.newID()
	key, keyRow, err := s.vault.NewKey(id)
	if err != nil {
		return fmt.Errorf("newsletter: subscribe: %w", err)
	}
	p := &pendingSub{sub: sub, evidence: string(ev), tokenHash: hex.EncodeToString(sum[:]), hash: s.AddressHash(sub.Email), mail: m,
		now: store.Millis(s.now()), newID: id, key: key, keyRow: keyRow, sealed: sealSub(key, sub),
		sealedEv: key.SealText(labelEvidence, string(ev)), wake: make(chan bool, 1)}

	g := &s.group
	lead := false
	g.mu.Lock()
	if g.leaders < max(g.max, 1) {
		g.leaders++
		lead = true
	} else {
		g.queue = append(g.queue, p)
	}
	g.mu.Unlock()
	if !lead {
		if stored := <-p.wake; stored {
			return p.err
		}
		// Handed the lead (and taken out of the queue).
	}
	g.mu.Lock()
	n := min(len(g.queue), subscribeBatch-1)
	batch := make([]*pendingSub, 0, n+1)
	batch = append(append(batch, p), g.queue[:n]...)
	g.queue = g.queue[n:]
	g.mu.Unlock()
	defer g.handOn() // even if storing panics, the callers waiting are not stranded
	s.storeBatch(context.WithoutCancel(ctx), batch)
	return p.err
}

// SubscribeBacklog is how many subscriptions are being stored now (leading, one per
// batch) and how many wait for a batch (queued): the load on the group commit.
func (s *Service) SubscribeBacklog() (leading, queued int) {
	s.group.mu.Lock()
	defer s.group.mu.Unlock()
	return s.group.leaders, len(s.group.queue)
}

// handOn ends a leader's turn: the first caller still queued leads next.
func (g *groupCommit) handOn() {
	g.mu.Lock()
	if len(g.queue) == 0 {
		g.leaders--
		g.mu.Unlock()
		return
	}
	next := g.queue[0]
	g.queue = g.queue[1:]
	g.mu.Unlock()
	next.wake <- false
}

// storeBatch stores a batch in one transaction and answers every caller in it. If the
// transaction fails for a reason that may lie in one subscription (a constraint, a value
// the database refuses), each is tried in a transaction of its own, so that one cannot
// fail another; if the database itself is unavailable, all fail at once. On PostgreSQL
// batches run side by side: two may both find an address new and both insert it; the
// later one fails on the unique address and, tried again, finds the row.
func (s *Service) storeBatch(ctx context.Context, batch []*pendingSub) {
	defer func() {
		r := recover()
		for _, p := range batch {
			if !p.answered {
				if p.err == nil {
					p.err = fmt.Errorf("newsletter: subscribe: %v", r)
				}
				p.answer()
			}
		}
		if r != nil {
			panic(r)
		}
	}()
	err := s.db.InTx(ctx, func(tx *store.Tx) error { return s.insertSubs(ctx, tx, batch) })
	if err != nil && !store.IsUnavailable(err) && (len(batch) > 1 || store.IsUniqueViolation(err)) {
		for _, p := range batch {
			for range 3 {
				p.err = s.db.InTx(ctx, func(tx *store.Tx) error { return s.insertSubs(ctx, tx, []*pendingSub{p}) })
				if !store.IsUniqueViolation(p.err) {
					break
				}
			}
			p.answer()
		}
		return
	}
	for _, p := range batch {
		p.err = err
		p.answer()
	}
}

// answer tells the caller its subscription is stored (or why not), once.
func (p *pendingSub) answer() {
	if !p.answered {
		p.answered = true
		p.wake <- true
	}
}

// insertSubs stores subscriptions within tx: a new address becomes a pending
// subscriber, a subject of its own with its data key; a pending one gets the newest
// names; the newest token of each subscriber is the only one that works; every request
// gets its confirmation mail. Values are sealed under the subscriber's subject's key:
// a new one's were sealed before, an existing one's are sealed here under its key.
func (s *Service) insertSubs(ctx context.Context, tx *store.Tx, batch []*pendingSub) error {
	hashes := make([]any, len(batch))
	for i, p := range batch {
		hashes[i] = p.hash
	}
	type known struct {
		id, subject, status string
		key                 *vault.Key // nil: the subscriber's erasure has begun
	}
	found := map[string]known{}
	rows, err := tx.QueryContext(ctx, `SELECT email_hash, id, subject_id, status FROM subscribers
		WHERE email_hash IN (`+store.Placeholders(1, len(hashes))+`)`, hashes...)
	if err != nil {
		return fmt.Errorf("newsletter: subscribe: %w", err)
	}
	var subjects []string
	for rows.Next() {
		var h string
		var k known
		if err := rows.Scan(&h, &k.id, &k.subject, &k.status); err != nil {
			rows.Close()
			return fmt.Errorf("newsletter: subscribe: %w", err)
		}
		found[h] = k
		subjects = append(subjects, k.subject)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("newsletter: subscribe: %w", err)
	}
	if len(subjects) > 0 {
		// Addresses on the list already (most are new): their subjects' keys.
		keys, err := s.keysOf(ctx, tx, subjects)
		if err != nil {
			return fmt.Errorf("newsletter: subscribe: %w", err)
		}
		for h, k := range found {
			k.key = keys[k.subject]
			found[h] = k
		}
	}

	var inserts []*pendingSub         // new addresses, the newest request of each
	newRow := map[string]int{}        // hash -> index in inserts
	var renamed []*pendingSub         // pending subscribers already stored: their newest names
	var stale []any                   // subscribers whose earlier tokens stop working
	token := map[string]*pendingSub{} // subscriber id -> the request whose token works
	evidence := map[*pendingSub]string{}
	for _, p := range batch {
		k, ok := found[p.hash]
		switch {
		case !ok:
			p.id = p.newID
			if j, dup := newRow[p.hash]; dup { // asked twice in one batch: the newest request's row
				delete(token, inserts[j].id)
				inserts[j] = p
			} else {
				newRow[p.hash] = len(inserts)
				inserts = append(inserts, p)
			}
			p.subject = p.id
			evidence[p] = p.sealedEv
		case k.key == nil:
			// Being erased: the erasure takes the row and suppresses the address. The
			// request gets its mail, whose link will not work.
			p.id, p.subject = k.id, k.subject
			continue
		default:
			p.id, p.subject = k.id, k.subject
			if k.status == StatusPending {
				renamed = append(renamed, p)
			}
			if token[k.id] == nil {
				stale = append(stale, k.id)
			}
			evidence[p] = k.key.SealText(labelEvidence, p.evidence)
		}
		token[p.id] = p
	}

	if len(inserts) > 0 {
		args := make([]any, 0, len(inserts)*10)
		keys := make([]any, 0, len(inserts)*4)
		for _, p := range inserts {
			args = append(args, p.id, p.id, p.sealed.email, p.hash, p.sealed.first, p.sealed.last, p.sealed.company,
				StatusPending, "form", p.now)
			keys = append(keys, p.keyRow...)
		}
		if err := tx.InsertRows(ctx, `INSERT INTO vault_keys (subject_id, wrapped, epoch, created_at) VALUES `, 4, keys, ""); err != nil {
			return fmt.Errorf("newsletter: subscribe: %w", err)
		}
		if err := tx.InsertRows(ctx, `INSERT INTO subscribers (id, subject_id, email, email_hash, first_name, last_name, company,
			status, source, created_at) VALUES `, 10, args, ""); err != nil {
			return fmt.Errorf("newsletter: subscribe: %w", err)
		}
	}
	for _, p := range renamed {
		k := found[p.hash].key
		v := sealSub(k, p.sub)
		if _, err := tx.ExecContext(ctx, `UPDATE subscribers SET first_name = $1, last_name = $2, company = $3 WHERE id = $4`,
			v.first, v.last, v.company, p.id); err != nil {
			return fmt.Errorf("newsletter: subscribe: %w", err)
		}
	}
	if len(stale) > 0 {
		if _, err := tx.ExecContext(ctx, `DELETE FROM subscriber_tokens WHERE subscriber_id IN (`+store.Placeholders(1, len(stale))+`)`, stale...); err != nil {
			return fmt.Errorf("newsletter: subscribe: %w", err)
		}
	}
	args := make([]any, 0, len(token)*5)
	for _, p := range batch {
		if token[p.id] == p {
			args = append(args, p.tokenHash, p.id, evidence[p], p.now, p.now+confirmTTL.Milliseconds())
		}
	}
	if err := tx.InsertRows(ctx, `INSERT INTO subscriber_tokens (id, subscriber_id, evidence, created_at, expires_at) VALUES `,
		5, args, ""); err != nil {
		return fmt.Errorf("newsletter: subscribe: %w", err)
	}
	mails := make([]mail.Prepared, len(batch))
	for i, p := range batch {
		mails[i] = p.mail.About(p.subject) // sealed under the subject's key
	}
	return s.outbox.EnqueuePrepared(ctx, tx, mails...)
}
