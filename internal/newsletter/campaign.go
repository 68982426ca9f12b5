package newsletter

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"steward/internal/apperr"
	"steward/internal/consent"
	"steward/internal/jobs"
	"steward/internal/mail"
	"steward/internal/store"
	"steward/internal/vault"
)

// Campaign states.
const (
	CampaignDraft   = "draft"
	CampaignSending = "sending"
	CampaignSent    = "sent"
)

// Campaign is a marketing mail written by staff.
type Campaign struct {
	ID         string
	Purpose    string
	Subject    string
	Body       string // Markdown
	Status     string
	CreatedBy  string
	CreatedAt  time.Time
	SentAt     time.Time
	Recipients int
	Sent       int
	Skipped    int // their consent ended before their turn
	Failed     int // the mail server refused them for good (no such mailbox)
	// Unconfirmed were being handed to the mail server when the run sending them
	// stopped (a crash), or the server's answer never came: they may or may not have
	// been delivered, and are never sent again.
	Unconfirmed int
}

// Delivery states: pending, then sending (recorded before the batch is handed to the
// mail server), then sent, failed (refused for good), pending again (refused for a
// while) or unconfirmed; skipped when the recipient may no longer be mailed.
const (
	deliveryPending     = "pending"
	deliverySending     = "sending"
	deliverySent        = "sent"
	deliveryFailed      = "failed"
	deliverySkipped     = "skipped"
	deliveryUnconfirmed = "unconfirmed"
)

// SendArgs is the job that sends a campaign; it carries only the campaign's id.
type SendArgs struct {
	CampaignID string `json:"campaign_id"`
}

// Kind names the job.
func (SendArgs) Kind() string { return "campaign_send" }

// Enqueuer schedules jobs in the caller's transaction.
type Enqueuer interface {
	Enqueue(ctx context.Context, tx *store.Tx, args jobs.Args) error
}

// CreateCampaign stores a draft. Only a marketing purpose can be mailed for.
func (s *Service) CreateCampaign(ctx context.Context, staffID, purpose, subject, body string) (Campaign, error) {
	subject, err := s.checkCampaign(purpose, subject, body)
	if err != nil {
		return Campaign{}, err
	}
	c := Campaign{ID: s.newID(), Purpose: purpose, Subject: subject, Body: body, Status: CampaignDraft, CreatedBy: staffID, CreatedAt: s.now().UTC()}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO campaigns (id, purpose, subject, body, status, created_by, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, c.ID, c.Purpose, c.Subject, c.Body, c.Status, c.CreatedBy, store.Millis(c.CreatedAt)); err != nil {
		return Campaign{}, fmt.Errorf("newsletter: campaign: %w", err)
	}
	return c, nil
}

// campaignColumns are the columns scanCampaign reads.
const campaignColumns = `id, purpose, subject, body, status, created_by, created_at, sent_at`

// scanCampaign reads a row of campaignColumns.
func scanCampaign(row interface{ Scan(...any) error }) (Campaign, error) {
	var c Campaign
	var created int64
	var sent sql.NullInt64
	if err := row.Scan(&c.ID, &c.Purpose, &c.Subject, &c.Body, &c.Status, &c.CreatedBy, &created, &sent); err != nil {
		return Campaign{}, err
	}
	c.CreatedAt, c.SentAt = store.FromMillis(created), store.NullMillis(sent)
	return c, nil
}

// Campaign returns a campaign with its delivery counts.
func (s *Service) Campaign(ctx context.Context, id string) (Campaign, error) {
	c, err := scanCampaign(s.db.QueryRowContext(ctx, `SELECT `+campaignColumns+` FROM campaigns WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Campaign{}, apperr.New(apperr.NotFound, "campaign_not_found", "no such campaign")
	}
	if err != nil {
		return Campaign{}, fmt.Errorf("newsletter: campaign: %w", err)
	}
	cs := []Campaign{c}
	if err := s.countDeliveries(ctx, cs); err != nil {
		return Campaign{}, err
	}
	return cs[0], nil
}

// Campaigns lists campaigns, newest first, with their delivery counts: two queries
// whatever the number of campaigns.
func (s *Service) Campaigns(ctx context.Context) ([]Campaign, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+campaignColumns+` FROM campaigns ORDER BY created_at DESC LIMIT 200`)
	if err != nil {
		return nil, fmt.Errorf("newsletter: campaigns: %w", err)
	}
	defer rows.Close()
	var out []Campaign
	for rows.Next() {
		c, err := scanCampaign(rows)
		if err != nil {
			return nil, fmt.Errorf("newsletter: campaigns: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("newsletter: campaigns: %w", err)
	}
	rows.Close()
	if err := s.countDeliveries(ctx, out); err != nil {
		return nil, err
	}
	return out, nil
}

// countDeliveries sets the delivery counts of the campaigns cs, in one query.
func (s *Service) countDeliveries(ctx context.Context, cs []Campaign) error {
	if len(cs) == 0 {
		return nil
	}
	ids := make([]string, len(cs))
	byID := make(map[string]*Campaign, len(cs))
	for i := range cs {
		ids[i] = cs[i].ID
		byID[cs[i].ID] = &cs[i]
	}
	cond, args := s.db.In("campaign_id", 1, ids)
	rows, err := s.db.QueryContext(ctx, `SELECT campaign_id, state, count(*) FROM campaign_deliveries WHERE `+cond+` GROUP BY campaign_id, state`, args...)
	if err != nil {
		return fmt.Errorf("newsletter: campaign deliveries: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, st string
		var n int
		if err := rows.Scan(&id, &st, &n); err != nil {
			return fmt.Errorf("newsletter: campaign deliveries: %w", err)
		}
		c := byID[id]
		c.Recipients += n
		switch st {
		case deliverySent:
			c.Sent = n
		case deliverySkipped:
			c.Skipped = n
		case deliveryFailed:
			c.Failed = n
		case deliveryUnconfirmed:
			c.Unconfirmed = n
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("newsletter: campaign deliveries: %w", err)
	}
	return nil
}

// audienceQuery selects the recipients the ledger allows for the purpose now:
// confirmed subscribers whose subject may be processed for it (consent, restriction,
// objection: consent.AllowedSQL) and whose address is not suppressed for it. Their
// address and first name are sealed.
func (s *Service) audienceQuery(purpose, extra string) (string, error) {
	return s.audienceQueryCols(purpose, "", "", extra)
}

// audienceQueryCols is audienceQuery with more selected columns, and what they need
// joined to subscribers s.
func (s *Service) audienceQueryCols(purpose, cols, join, extra string) (string, error) {
	allowed, err := s.consent.AllowedSQL(purpose, "s.subject_id")
	if err != nil {
		return "", err
	}
	return `SELECT s.subject_id, s.email, s.first_name` + cols + ` FROM subscribers s ` + join + `
		WHERE s.status = 'confirmed' AND ` + allowed + `
		AND NOT EXISTS (SELECT 1 FROM suppressions x WHERE x.hash = s.email_hash AND x.purpose IN ($1, '*'))` + extra, nil
}

// Recipient is one person a campaign goes to.
type Recipient struct {
	SubjectID string
	Email     string
	FirstName string
}

// Audience calls fn for every subject the ledger allows to be mailed for the purpose
// now: one range read of the mailable table, which every change that can alter the
// answer keeps current (Refresh). A test holds it equal to the rule evaluated
// subscriber by subscriber; sending checks each batch against the rule again anyway,
// and opens each batch's addresses as it sends it.
func (s *Service) Audience(ctx context.Context, purpose string, fn func(subjectID string) error) error {
	if _, ok := s.consent.Register().Purpose(purpose); !ok {
		return apperr.Field("purpose", "purpose_unknown", fmt.Sprintf("%q is not a registered purpose", purpose))
	}
	rows, err := s.db.QueryContext(ctx, `SELECT subject_id FROM mailable WHERE purpose = $1`, purpose)
	if err != nil {
		return fmt.Errorf("newsletter: audience: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return fmt.Errorf("newsletter: audience: %w", err)
		}
		if err := fn(id); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Recipients is Audience with each recipient's address and first name, opened from
// the mailable table's sealed copies with the subject's key. A recipient whose key is
// gone (an erasure under way) is left out.
func (s *Service) Recipients(ctx context.Context, purpose string, fn func(Recipient) error) error {
	if _, ok := s.consent.Register().Purpose(purpose); !ok {
		return apperr.Field("purpose", "purpose_unknown", fmt.Sprintf("%q is not a registered purpose", purpose))
	}
	rows, err := s.db.QueryContext(ctx, `SELECT m.subject_id, m.email, m.first_name, `+vault.KeyColumns("k")+` FROM mailable m
		`+vault.KeyJoin("k", "m.subject_id")+` WHERE m.purpose = $1`, purpose)
	if err != nil {
		return fmt.Errorf("newsletter: audience: %w", err)
	}
	return s.scanRecipients(rows, func(r Recipient, _ []any) error { return fn(r) })
}

// AudienceByRule is Recipients evaluated from the rule for every subscriber, without
// the maintained table (tests and benchmarks compare the two).
func (s *Service) AudienceByRule(ctx context.Context, purpose string, fn func(Recipient) error) error {
	q, err := s.audienceQueryCols(purpose, ", "+vault.KeyColumns("k"), vault.KeyJoin("k", "s.subject_id"), "")
	if err != nil {
		return err
	}
	rows, err := s.db.QueryContext(ctx, q, purpose)
	if err != nil {
		return fmt.Errorf("newsletter: audience: %w", err)
	}
	return s.scanRecipients(rows, func(r Recipient, _ []any) error { return fn(r) })
}

// scanRecipients reads rows of subject id, sealed address and first name, the
// subject's key (vault.KeyColumns) and as many more columns as extra holds pointers
// for, opens the address and first name and calls fn with each recipient and extra. A
// subject without a key (an erasure under way) is left out.
func (s *Service) scanRecipients(rows *sql.Rows, fn func(r Recipient, extra []any) error, extra ...any) error {
	defer rows.Close()
	for rows.Next() {
		var r Recipient
		var wrapped []byte
		var epoch sql.NullInt64
		if err := rows.Scan(append([]any{&r.SubjectID, &r.Email, &r.FirstName, &wrapped, &epoch}, extra...)...); err != nil {
			return fmt.Errorf("newsletter: audience: %w", err)
		}
		k, err := s.keyOf(r.SubjectID, wrapped, epoch)
		if err != nil {
			return fmt.Errorf("newsletter: audience: %w", err)
		}
		if k == nil {
			continue
		}
		if r.Email, err = k.OpenText(labelEmail, r.Email); err != nil {
			return fmt.Errorf("newsletter: audience: %w", err)
		}
		if r.FirstName, err = k.OpenText(labelFirstName, r.FirstName); err != nil {
			return fmt.Errorf("newsletter: audience: %w", err)
		}
		if err := fn(r, extra); err != nil {
			return err
		}
	}
	return rows.Err()
}

// tokenTTL is how long an opt-out link works after the campaign was sent.
const tokenTTL = 400 * 24 * time.Hour

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// token is the signed opt-out token of one delivery: its id, its expiry day and a MAC,
// in lower-case base32 (42 characters: it fits the local part of
// unsubscribe+TOKEN@domain, and mail servers that change case do no harm).
func (s *Service) token(tokenID []byte, expires time.Time) string {
	buf := make([]byte, 0, 26)
	buf = append(buf, tokenID...)
	buf = binary.BigEndian.AppendUint32(buf, uint32(expires.Unix()/86400))
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("unsubscribe:"))
	m.Write(buf)
	buf = append(buf, m.Sum(nil)[:12]...)
	return strings.ToLower(b32.EncodeToString(buf))
}

var errBadToken = apperr.Field("t", "link_invalid", "this opt-out link is not valid or has expired")

// parseToken checks a token and returns its delivery's token id.
func (s *Service) parseToken(tok string) (string, error) {
	tok = strings.ToUpper(strings.TrimSpace(tok))
	raw, err := b32.DecodeString(tok)
	// Only the token's own text: base32 decoding skips line breaks and the last
	// character's spare bits, and a token is one text, as it was mailed.
	if err != nil || len(raw) != 26 || b32.EncodeToString(raw) != tok {
		return "", errBadToken
	}
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("unsubscribe:"))
	m.Write(raw[:14])
	if subtle.ConstantTimeCompare(m.Sum(nil)[:12], raw[14:]) != 1 {
		return "", errBadToken
	}
	if int64(binary.BigEndian.Uint32(raw[10:14]))*86400 < s.now().Unix() {
		return "", errBadToken
	}
	return hex.EncodeToString(raw[:10]), nil
}

// StartSend snapshots the audience of a draft campaign and schedules its sending.
func (s *Service) StartSend(ctx context.Context, jobs Enqueuer, id string) (Campaign, error) {
	c, err := s.Campaign(ctx, id)
	if err != nil {
		return Campaign{}, err
	}
	if c.Status != CampaignDraft {
		return Campaign{}, apperr.New(apperr.Conflict, "campaign_not_draft", "this campaign was already sent")
	}
	var subjects []string
	if err := s.Audience(ctx, c.Purpose, func(id string) error { subjects = append(subjects, id); return nil }); err != nil {
		return Campaign{}, err
	}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		// The purpose too: the audience read above is that purpose's, and a draft's
		// purpose may have been changed since (UpdateCampaign).
		res, err := tx.ExecContext(ctx, `UPDATE campaigns SET status = $1 WHERE id = $2 AND status = $3 AND purpose = $4`, CampaignSending, id, CampaignDraft, c.Purpose)
		if err != nil {
			return fmt.Errorf("newsletter: send: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("newsletter: send: %w", err)
		} else if n != 1 {
			return s.notDraft(ctx, id, "")
		}
		if err := s.addDeliveries(ctx, tx, id, subjects); err != nil {
			return fmt.Errorf("newsletter: send: %w", err)
		}
		return jobs.Enqueue(ctx, tx, SendArgs{CampaignID: id})
	})
	if err != nil {
		return Campaign{}, err
	}
	return s.Campaign(ctx, id)
}

// addDeliveries writes a pending delivery, with its random token id, for each subject
// of the campaign's audience: on PostgreSQL in one statement of two arrays, on SQLite
// in multi-row INSERTs. It sorts subjects.
func (s *Service) addDeliveries(ctx context.Context, tx *store.Tx, campaign string, subjects []string) error {
	// Subjects in order, and the random token ids handed out to them in order: every
	// index of the new rows is written page by page, not at random.
	tokens := make([]string, len(subjects))
	for i := range tokens {
		var tid [10]byte
		_, _ = rand.Read(tid[:])
		tokens[i] = hex.EncodeToString(tid[:])
	}
	slices.Sort(subjects)
	slices.Sort(tokens)
	now := store.Millis(s.now())
	if s.db.Dialect == store.Postgres {
		_, err := tx.ExecContext(ctx, `INSERT INTO campaign_deliveries (campaign_id, subject_id, token_id, state, at)
			SELECT $1, u.subject, u.token, 'pending', $2 FROM unnest($3::text[], $4::text[]) AS u(subject, token)
			ON CONFLICT (campaign_id, subject_id) DO NOTHING`, campaign, now, subjects, tokens)
		return err
	}
	ins := tx.Bulk("campaign_deliveries", []string{"campaign_id", "subject_id", "token_id", "state", "at"}, 500,
		" ON CONFLICT (campaign_id, subject_id) DO NOTHING")
	defer ins.Close(ctx)
	for i := range subjects {
		if err := ins.Add(ctx, campaign, subjects[i], tokens[i], "pending", now); err != nil {
			return err
		}
	}
	return ins.Close(ctx)
}

// sendBatch is how many mails go over one connection.
const sendBatch = 200

// defaultSendBudget is how long one run of Send works before it stops between batches
// and asks to be run again (ErrMoreToSend): a job's run stays well within the job
// timeout, however large the campaign.
const defaultSendBudget = 90 * time.Second

// SetSendBudget sets how long one run of Send works (at least one batch) before it
// stops with ErrMoreToSend; 90 s unless set.
func (s *Service) SetSendBudget(d time.Duration) { s.sendBudget = d }

// ErrMoreToSend says that Send stopped after its time budget with deliveries left: run
// it again (the job queue snoozes the job).
var ErrMoreToSend = errors.New("newsletter: campaign not finished; send again")

// Send works through a campaign's pending deliveries: each batch is read and checked
// against the ledger, rendered, checked again just before it is sent (a withdrawal
// since is honoured), recorded as being sent, sent, then marked. Three batches are in
// hand at once: while one is sent, the next is read, checked and rendered and the one
// before is marked. Each delivery is handed over at most once: a run that stops between
// handing a batch over and marking it (a crash) leaves its deliveries sending, and the
// next run settles them without sending them again (settleSending).
func (s *Service) Send(ctx context.Context, id string) error {
	c, err := s.Campaign(ctx, id)
	if err != nil {
		return err
	}
	if c.Status == CampaignSent {
		return nil
	}
	if err := s.settleSending(ctx, id); err != nil {
		return err
	}
	p, ok := s.consent.Register().Purpose(c.Purpose)
	if !ok {
		return fmt.Errorf("newsletter: campaign %s: purpose %q is no longer registered", id, c.Purpose)
	}
	bodyHTML, err := s.body(c)
	if err != nil {
		return err
	}
	budget := s.sendBudget
	if budget <= 0 {
		budget = defaultSendBudget
	}
	deadline := s.now().Add(budget)
	run := &sendRun{s: s, c: c, p: p, bodyHTML: bodyHTML, send: s.sender.SendAll}
	// One connection for the whole campaign where the sender can hold one.
	if ss, ok := s.sender.(mail.SessionSender); ok {
		sess := ss.Open()
		defer sess.Close()
		run.send = sess.SendAll
	}
	if err := run.batches(ctx, deadline); err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, `UPDATE campaigns SET status = $1, sent_at = $2 WHERE id = $3`, CampaignSent, store.Millis(s.now()), id)
	return err
}

// sendRun is one run of Send.
type sendRun struct {
	s        *Service
	c        Campaign
	p        consent.Purpose
	bodyHTML mailBody
	send     func(context.Context, []mail.Message) error
	marking  <-chan error // the batch being marked, if one is
}

// batches sends batch after batch until none is left, or until the deadline has
// passed after one was sent (ErrMoreToSend).
func (r *sendRun) batches(ctx context.Context, deadline time.Time) error {
	sentOne := false
	next := r.prepare(ctx, "")
	for {
		res := <-next
		if res.err != nil {
			return r.fail(res.err, nil)
		}
		b := res.batch
		if len(b.tokens) == 0 {
			return r.waitMark()
		}
		if sentOne && r.s.now().After(deadline) {
			return r.fail(ErrMoreToSend, nil) // b was read, not sent: the next run reads it again
		}
		sentOne = true
		next = r.prepare(ctx, b.last)
		if err := r.sendBatch(ctx, &b); err != nil {
			return r.fail(err, next)
		}
	}
}

// prepare reads, checks and renders the batch after the token id after, in the
// background. Batches are read in token order after the last one read, so reading
// does not wait for marking.
func (r *sendRun) prepare(ctx context.Context, after string) <-chan sendBatchResult {
	out := make(chan sendBatchResult, 1)
	go func() {
		b, err := r.s.prepareBatch(ctx, r.c, r.p, r.bodyHTML, after)
		out <- sendBatchResult{b, err}
	}()
	return out
}

// sendBatch checks a prepared batch again and records its deliveries as being sent
// (claim), sends it, and starts marking it once the batch before is marked.
func (r *sendRun) sendBatch(ctx context.Context, b *preparedBatch) error {
	if err := r.s.claim(ctx, r.c, b); err != nil {
		return err
	}
	if len(b.msgs) > 0 {
		if err := r.send(ctx, b.msgs); err != nil {
			return r.partlySent(ctx, b, err)
		}
	}
	if err := r.waitMark(); err != nil {
		return err
	}
	// Sent is sent: the marking finishes even if the run is cancelled now.
	done := make(chan error, 1)
	r.marking = done
	states, _ := b.outcome(nil)
	go func() { done <- r.s.markBatch(context.WithoutCancel(ctx), states) }()
	return nil
}

// partlySent settles a batch whose sending failed: what the server took is marked
// sent, a permanent refusal failed (never tried again), what was handed over without
// an answer unconfirmed; a temporary refusal goes back to pending for the job's retry,
// and nobody else of the batch gets the mail twice. It returns nil when the run may go
// on. An error that does not say what was taken leaves the batch to settleSending.
func (r *sendRun) partlySent(ctx context.Context, b *preparedBatch, sendErr error) error {
	var pe *mail.PartialError
	if !errors.As(sendErr, &pe) {
		if err := r.waitMark(); err != nil {
			return errors.Join(sendErr, err)
		}
		return errors.Join(sendErr, r.s.settleSending(context.WithoutCancel(ctx), r.c.ID))
	}
	states, retry := b.outcome(pe)
	if err := r.waitMark(); err != nil {
		return err
	}
	if err := r.s.markBatch(context.WithoutCancel(ctx), states); err != nil {
		return err
	}
	if retry {
		return sendErr
	}
	r.s.log.Warn("newsletter: recipients refused by the mail server", "campaign", r.c.ID, "count", len(states["failed"]))
	return nil
}

// waitMark waits for the batch being marked, if one is.
func (r *sendRun) waitMark() error {
	if r.marking == nil {
		return nil
	}
	err := <-r.marking
	r.marking = nil
	return err
}

// fail ends the run: the batch being read and the one being marked finish first.
func (r *sendRun) fail(err error, pending <-chan sendBatchResult) error {
	if pending != nil {
		<-pending
	}
	if merr := r.waitMark(); merr != nil && err == nil {
		err = merr
	}
	return err
}

// preparedBatch is a batch of a campaign ready to send: the token ids of the
// deliveries it read, the last of them, and the messages for those of them who may be
// mailed, with their recipients.
type preparedBatch struct {
	tokens []string
	last   string
	msgs   []mail.Message
	recips []preparedRecipient // for msgs[i]
}

// outcome is how the batch's deliveries end once it was handed over, as token ids by
// state, given what the server did not take (pe, nil when it took everything): sent,
// failed (refused for good), unconfirmed (no answer came); a temporary refusal goes
// back to pending, and retry says there is one. (Who was no longer allowed ended
// skipped when the batch was claimed.)
func (b preparedBatch) outcome(pe *mail.PartialError) (states map[string][]string, retry bool) {
	states = map[string][]string{}
	for i, r := range b.recips {
		var temporary, refused, unsure bool
		if pe != nil {
			temporary, refused = pe.Failed[i]
			unsure = pe.Unsure[i]
		}
		switch {
		case unsure:
			states[deliveryUnconfirmed] = append(states[deliveryUnconfirmed], r.tokenID)
		case !refused:
			states[deliverySent] = append(states[deliverySent], r.tokenID)
		case temporary:
			states[deliveryPending] = append(states[deliveryPending], r.tokenID)
			retry = true
		default:
			states[deliveryFailed] = append(states[deliveryFailed], r.tokenID)
		}
	}
	return states, retry
}

type preparedRecipient struct {
	Recipient
	tokenID string
}

type sendBatchResult struct {
	batch preparedBatch
	err   error
}

// allowedNow asks the rule which of the subjects may be mailed for the campaign's
// purpose now, and whether each may be measured (the open beacon), in one query that
// reads their keys too: each recipient's address and first name are opened here.
func (s *Service) allowedNow(ctx context.Context, c Campaign, subjects []string, fn func(r Recipient, track bool)) error {
	in, args := s.db.In("s.subject_id", 2, subjects)
	track, err := s.consent.AllowedSQL("email_open_tracking", "s.subject_id")
	if err != nil {
		track = "1 = 0" // no such purpose registered: never measured
	}
	aq, err := s.audienceQueryCols(c.Purpose, ", "+vault.KeyColumns("k")+", CASE WHEN "+track+" THEN 1 ELSE 0 END",
		vault.KeyJoin("k", "s.subject_id"), " AND "+in)
	if err != nil {
		return err
	}
	rows, err := s.db.QueryContext(ctx, aq, append([]any{c.Purpose}, args...)...)
	if err != nil {
		return fmt.Errorf("newsletter: send: %w", err)
	}
	var t int
	return s.scanRecipients(rows, func(r Recipient, _ []any) error {
		fn(r, t == 1)
		return nil
	}, &t)
}

// prepareBatch reads the next pending deliveries after the token id, asks the ledger
// who of them may be mailed, and renders their mails.
func (s *Service) prepareBatch(ctx context.Context, c Campaign, p consent.Purpose, bodyHTML mailBody, after string) (preparedBatch, error) {
	var out preparedBatch
	rows, err := s.db.QueryContext(ctx, `SELECT d.token_id, d.subject_id FROM campaign_deliveries d
		WHERE d.campaign_id = $1 AND d.state = 'pending' AND d.token_id > $2 ORDER BY d.token_id LIMIT $3`, c.ID, after, sendBatch)
	if err != nil {
		return out, fmt.Errorf("newsletter: send: %w", err)
	}
	tokens := map[string]string{} // subject -> token id
	var subjects []string
	for rows.Next() {
		var tid, subj string
		if err := rows.Scan(&tid, &subj); err != nil {
			rows.Close()
			return out, fmt.Errorf("newsletter: send: %w", err)
		}
		tokens[subj] = tid
		subjects = append(subjects, subj)
		out.tokens = append(out.tokens, tid)
		out.last = tid
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return out, fmt.Errorf("newsletter: send: %w", err)
	}
	if len(subjects) == 0 {
		return out, nil
	}
	expires := s.now().Add(tokenTTL)
	err = s.allowedNow(ctx, c, subjects, func(r Recipient, track bool) {
		tid := tokens[r.SubjectID]
		raw, _ := hex.DecodeString(tid)
		out.msgs = append(out.msgs, s.render(c, p, bodyHTML, r, s.token(raw, expires), track))
		out.recips = append(out.recips, preparedRecipient{r, tid})
	})
	return out, err
}

// claim asks again, just before the batch is sent, who of it may be mailed, and
// records in the same statement, committed before the batch is handed to the mail
// server, that their deliveries are being sent: the batch was read and checked against
// the rule while the one before was being sent, which can take seconds, so this check
// reads the kept table of whom each purpose may mail (mailable), which every decision,
// restriction, objection, suppression and erasure updates as it happens (a lookup per
// recipient). Only deliveries still pending are claimed, and the batch keeps only their
// messages: whatever else may run the campaign, a delivery is handed over once. The
// rest of the batch still pending (no longer allowed) ends skipped. In the common case
// this is one statement, as the check alone was; what it adds is the rows' update.
// (Whether an open is measured was decided with the rule; an open is only recorded if
// the recipient's consent to it holds when the image is fetched.)
func (s *Service) claim(ctx context.Context, c Campaign, b *preparedBatch) error {
	now := store.Millis(s.now())
	claimed := map[string]bool{}
	if len(b.recips) > 0 {
		mailed := make([]string, len(b.recips))
		for i, r := range b.recips {
			mailed[i] = r.tokenID
		}
		in, args := s.db.In("token_id", 4, mailed)
		rows, err := s.db.QueryWriter(ctx, `UPDATE campaign_deliveries SET state = $1, at = $2 WHERE state = 'pending' AND `+in+`
			AND EXISTS (SELECT 1 FROM mailable m WHERE m.purpose = $3 AND m.subject_id = campaign_deliveries.subject_id) RETURNING token_id`,
			append([]any{deliverySending, now, c.Purpose}, args...)...)
		if err != nil {
			return fmt.Errorf("newsletter: send: %w", err)
		}
		for rows.Next() {
			var tid string
			if err := rows.Scan(&tid); err != nil {
				rows.Close()
				return fmt.Errorf("newsletter: send: %w", err)
			}
			claimed[tid] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("newsletter: send: %w", err)
		}
	}
	if len(claimed) != len(b.recips) {
		var msgs []mail.Message
		var recips []preparedRecipient
		for i, r := range b.recips {
			if claimed[r.tokenID] {
				msgs = append(msgs, b.msgs[i])
				recips = append(recips, r)
			}
		}
		b.msgs, b.recips = msgs, recips
	}
	var skipped []string
	for _, tid := range b.tokens {
		if !claimed[tid] {
			skipped = append(skipped, tid)
		}
	}
	if len(skipped) == 0 {
		return nil
	}
	// Its own statement: a crash before it leaves them pending, read and checked again
	// by the next run.
	in, args := s.db.In("token_id", 3, skipped)
	if _, err := s.db.ExecContext(ctx, `UPDATE campaign_deliveries SET state = $1, at = $2 WHERE state = 'pending' AND `+in,
		append([]any{deliverySkipped, now}, args...)...); err != nil {
		return fmt.Errorf("newsletter: send: %w", err)
	}
	return nil
}

// settleSending ends the campaign's deliveries left sending by a run that stopped
// between handing them to the mail server and marking them (a crash, or an error that
// does not say what was taken): they are never sent again. A sender that can tell what
// it took (the .eml folder) settles them exactly: sent, or pending again when it never
// got them. Of an SMTP server nobody can ask: they end unconfirmed, counted on the
// campaign as mails that may not have been delivered.
//
// Only one run of a campaign works at a time (a job runs on one node at a time, and a
// run stops after its budget, long before River would rescue its job as stuck), so
// every delivery found sending belongs to a run that ended.
func (s *Service) settleSending(ctx context.Context, campaign string) error {
	tids, err := store.Strings(ctx, s.db, `SELECT token_id FROM campaign_deliveries WHERE campaign_id = $1 AND state = 'sending'`, campaign)
	if err != nil {
		return fmt.Errorf("newsletter: settling deliveries: %w", err)
	}
	if len(tids) == 0 {
		return nil
	}
	states := map[string][]string{deliveryUnconfirmed: tids}
	if c, ok := mail.ConfirmerOf(s.sender); ok {
		ids := make([]string, len(tids))
		for i, tid := range tids {
			ids[i] = messageID(tid)
		}
		taken, err := c.Taken(ids)
		if err != nil {
			return fmt.Errorf("newsletter: settling deliveries: %w", err)
		}
		states = map[string][]string{}
		for i, tid := range tids {
			st := deliveryPending
			if taken[ids[i]] {
				st = deliverySent
			}
			states[st] = append(states[st], tid)
		}
	}
	if err := s.markBatch(ctx, states); err != nil {
		return err
	}
	s.log.Warn("newsletter: deliveries left sending by a run that stopped, settled", "campaign", campaign,
		"sent", len(states[deliverySent]), "pending", len(states[deliveryPending]), "unconfirmed", len(states[deliveryUnconfirmed]))
	return nil
}

// messageID is the id of the message of the delivery with the token id tid: the
// start of its opt-out token (render), which encodes the token id.
func messageID(tid string) string {
	raw, err := hex.DecodeString(tid)
	if err != nil {
		return ""
	}
	return strings.ToLower(b32.EncodeToString(raw))[:min(16, len(raw)*8/5)]
}

// markBatch records how a sent batch's deliveries ended, a statement per state.
func (s *Service) markBatch(ctx context.Context, states map[string][]string) error {
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		now := store.Millis(s.now())
		for state, tids := range states {
			if len(tids) == 0 {
				continue
			}
			in, args := s.db.In("token_id", 3, tids)
			if _, err := tx.ExecContext(ctx, `UPDATE campaign_deliveries SET state = $1, at = $2 WHERE `+in,
				append([]any{state, now}, args...)...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("newsletter: send: %w", err)
	}
	return nil
}

// render builds one marketing mail: the campaign in the site's layout, the purpose it
// is sent for, a signed one-click opt-out (a link, and List-Unsubscribe with mailto and
// https per RFC 8058), and an open beacon only when the recipient's consent covers it.
func (s *Service) render(c Campaign, p consent.Purpose, body mailBody, r Recipient, tok string, track bool) mail.Message {
	link := s.baseURL + "/unsubscribe?t=" + tok
	oneClick := s.baseURL + "/unsubscribe/one-click?t=" + tok
	mailto := "mailto:unsubscribe+" + tok + "@" + s.unsub + "?subject=unsubscribe"
	beacon := ""
	if track {
		beacon = s.baseURL + "/b/o.gif?t=" + tok
	}
	m := s.compose(c, p, body, r, link, beacon, false)
	m.ID = tok[:16]
	m.Headers = map[string]string{
		"List-Unsubscribe":      "<" + oneClick + ">, <" + mailto + ">",
		"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
		"Precedence":            "bulk",
	}
	return m
}

// Unsubscribed says what an opt-out did.
type Unsubscribed struct {
	PurposeName string
	Already     bool // the address was unsubscribed from it before this opt-out
	Member      bool // the subject has an account, whose preferences show every choice
}

// Unsubscribe honours an opt-out token: the consent for the campaign's purpose is
// withdrawn (source: email link, or inbound email) and the address is suppressed for it,
// so an old import cannot bring it back. A used token works again, harmlessly. The token
// of a link mailed to confirm an unsubscribe mail (UnsubscribeByMail) withdraws every
// marketing consent instead, as the mail asked.
func (s *Service) Unsubscribe(ctx context.Context, tok string, src consent.Source, evidence map[string]string) (Unsubscribed, error) {
	if strings.HasPrefix(tok, mailTokenPrefix) {
		return s.unsubscribeByLink(ctx, tok, src, evidence)
	}
	tid, err := s.parseToken(tok)
	if err != nil {
		return Unsubscribed{}, err
	}
	subject, purpose, hash, state, err := s.tokenState(ctx, tid)
	if err != nil {
		return Unsubscribed{}, err
	}
	// The suppression first: if the withdrawal then failed, the address would still
	// be kept out of every audience and import.
	if err := s.db.InTx(ctx, func(tx *store.Tx) error { return s.suppressAddress(ctx, tx, hash, purpose, "unsubscribed") }); err != nil {
		return Unsubscribed{}, err
	}
	if err := s.consent.Apply(ctx, subject, map[string]consent.Decision{purpose: consent.Withdrawn}, nil, src, evidence); err != nil {
		return Unsubscribed{}, err
	}
	return state, nil
}

// tokenState finds what a campaign's opt-out token is about, and whether its address
// is unsubscribed from the purpose already.
func (s *Service) tokenState(ctx context.Context, tid string) (subject, purpose, hash string, out Unsubscribed, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT d.subject_id, c.purpose, s.email_hash, s.account_id IS NOT NULL,
		EXISTS (SELECT 1 FROM suppressions x WHERE x.hash = s.email_hash AND x.purpose IN (c.purpose, '*'))
		FROM campaign_deliveries d JOIN campaigns c ON c.id = d.campaign_id JOIN subscribers s ON s.subject_id = d.subject_id
		WHERE d.token_id = $1`, tid).
		Scan(&subject, &purpose, &hash, &out.Member, &out.Already)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", "", Unsubscribed{}, errBadToken // erased since, or never sent
	}
	if err != nil {
		return "", "", "", Unsubscribed{}, fmt.Errorf("newsletter: unsubscribe: %w", err)
	}
	out.PurposeName = s.purposeName(purpose)
	return subject, purpose, hash, out, nil
}

// UnsubscribeState checks an opt-out token and says what it would opt out of and
// whether that is done already, changing nothing (the page before the click).
func (s *Service) UnsubscribeState(ctx context.Context, tok string) (Unsubscribed, error) {
	if strings.HasPrefix(tok, mailTokenPrefix) {
		subject, _, err := s.checkMailToken(ctx, tok)
		if err != nil {
			return Unsubscribed{}, err
		}
		_, err = s.members.Lookup(ctx, subject)
		if err != nil && apperr.KindOf(err) != apperr.NotFound {
			return Unsubscribed{}, err
		}
		return Unsubscribed{PurposeName: allMarketing, Member: err == nil}, nil
	}
	tid, err := s.parseToken(tok)
	if err != nil {
		return Unsubscribed{}, err
	}
	_, _, _, out, err := s.tokenState(ctx, tid)
	return out, err
}

func (s *Service) purposeName(key string) string {
	if p, ok := s.consent.Register().Purpose(key); ok {
		return p.Name
	}
	return "this mailing list"
}

// PurposeOf checks an opt-out token and names the purpose it would opt out of,
// changing nothing (the page before the click).
func (s *Service) PurposeOf(ctx context.Context, tok string) (string, error) {
	if strings.HasPrefix(tok, mailTokenPrefix) {
		return s.mailTokenPurpose(ctx, tok)
	}
	tid, err := s.parseToken(tok)
	if err != nil {
		return "", err
	}
	var purpose string
	err = s.db.QueryRowContext(ctx, `SELECT c.purpose FROM campaign_deliveries d JOIN campaigns c ON c.id = d.campaign_id WHERE d.token_id = $1`, tid).Scan(&purpose)
	if errors.Is(err, sql.ErrNoRows) {
		return "", errBadToken
	}
	if err != nil {
		return "", fmt.Errorf("newsletter: unsubscribe: %w", err)
	}
	return s.purposeName(purpose), nil
}

// RecordOpen records an open from the beacon, if the recipient's consent to open
// measurement holds now; otherwise nothing is kept.
func (s *Service) RecordOpen(ctx context.Context, tok string) {
	tid, err := s.parseToken(tok)
	if err != nil {
		return
	}
	// The beacon answers the same whatever happens here; a failure to look up or
	// record costs one open in the figures, and is logged.
	var subject, campaign string
	err = s.db.QueryRowContext(ctx, `SELECT subject_id, campaign_id FROM campaign_deliveries WHERE token_id = $1`, tid).Scan(&subject, &campaign)
	if errors.Is(err, sql.ErrNoRows) {
		return // the delivery is gone (erased, or the campaign deleted)
	}
	if err != nil {
		s.log.ErrorContext(ctx, "newsletter: recording an open", "err", err)
		return
	}
	v, err := s.consent.Allowed(ctx, subject, "email_open_tracking")
	if err != nil {
		s.log.ErrorContext(ctx, "newsletter: recording an open", "err", err)
		return
	}
	if !v.Allowed {
		return
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO campaign_opens (campaign_id, subject_id, at) VALUES ($1, $2, $3) ON CONFLICT (campaign_id, subject_id) DO NOTHING`,
		campaign, subject, store.Millis(s.now())); err != nil {
		s.log.ErrorContext(ctx, "newsletter: recording an open", "err", err)
	}
}

// Preview renders the campaign as a sample recipient would get it, and counts whom the
// ledger allows it to go to now.
func (s *Service) Preview(ctx context.Context, id string) (mail.Message, int, error) {
	m, c, err := s.PreviewMail(ctx, id)
	if err != nil {
		return mail.Message{}, 0, err
	}
	n := 0
	if err := s.Audience(ctx, c.Purpose, func(string) error { n++; return nil }); err != nil {
		return mail.Message{}, 0, err
	}
	return m, n, nil
}
