// Package mail owns the outbox: transactional messages are stored in the mail_outbox
// table in the same transaction as the change that causes them, sealed under the data
// key of the subject they are about, and rendered from embedded templates and delivered
// by a dispatcher on each node through a Sender (.eml files in a folder, or SMTP), many
// over one connection. A row lives only until its message is handed over, so the outbox
// keeps no copy of what was sent.
package mail

import (
	"bytes"
	"context"
	"database/sql"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io"
	"log/slog"
	"mime/quotedprintable"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	texttemplate "text/template"
	"time"

	"steward/internal/datamap"
	"steward/internal/store"
	"steward/internal/vault"
)

//go:embed templates
var templateFS embed.FS

// Message is a rendered mail ready for a Sender.
type Message struct {
	ID      string
	To      string
	Subject string
	Text    string
	HTML    string
	// Template names what produced it; senders may log it, never the content.
	Template string
	// Headers are extra headers (a marketing mail's List-Unsubscribe). Only what
	// sending needs: the processor receives nothing else about the recipient.
	Headers map[string]string
}

// BulkSender sends many messages over one connection (campaigns).
type BulkSender interface {
	SendAll(ctx context.Context, msgs []Message) error
}

// Sender hands a message to whatever delivers it.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// Transactional is a service mail: registration confirmation, password reset, guardian
// consent, security notices. It is sent whatever the member's marketing choices and its
// templates have no place for marketing content: only the fixed transactional templates
// can be named.
type Transactional struct {
	// SubjectID is the account or subscriber the mail is about: the member for their
	// own mail, the child for a guardian's, the owner of an address registered again,
	// the subscriber for a newsletter confirmation. The queued mail is sealed under
	// its data key, and its erasure takes the mail out of the outbox.
	SubjectID string
	To        string
	Template  TransactionalTemplate
	Data      map[string]string
}

// TransactionalTemplate names one of the fixed transactional templates.
type TransactionalTemplate string

// The transactional templates.
const (
	VerifyEmail       TransactionalTemplate = "verify_email"
	NewsletterConfirm TransactionalTemplate = "newsletter_confirm"
	AccountExists     TransactionalTemplate = "account_exists"
	GuardianConsent   TransactionalTemplate = "guardian_consent"
	PasswordReset     TransactionalTemplate = "password_reset"
	PasswordChanged   TransactionalTemplate = "password_changed"
	AccountActive     TransactionalTemplate = "account_active"
	EmailChanging     TransactionalTemplate = "email_changing"
	// UnsubscribeConfirm asks the From: address of an unsubscribe mail that could
	// not be authenticated to confirm it with a link.
	UnsubscribeConfirm TransactionalTemplate = "unsubscribe_confirm"
	// GuardianPurpose asks a child's guardian to agree to a purpose the child chose
	// that a child's own consent does not cover (marketing, sharing).
	GuardianPurpose TransactionalTemplate = "guardian_purpose"
	// The rights desk: a request received, extended or closed (to the requester), and
	// the daily warning of requests coming due (to the dpo staff).
	RequestReceived TransactionalTemplate = "request_received"
	RequestExtended TransactionalTemplate = "request_extended"
	RequestClosed   TransactionalTemplate = "request_closed"
	RequestsDue     TransactionalTemplate = "requests_due"
	// RequestConfirm asks a person without an account to confirm the address their
	// request is answered at.
	RequestConfirm TransactionalTemplate = "request_confirm"
	// InactiveWarning tells a member that their account, unused for the operator's
	// period, will be erased on a date unless they log in.
	InactiveWarning TransactionalTemplate = "inactive_warning"
	// PolicyChanged tells every member of a material change of the privacy policy
	// (or of a business transfer) and asks them to read it and confirm their choices.
	PolicyChanged TransactionalTemplate = "policy_changed"
	// DisclosureMade tells a member their data was disclosed to an authority;
	// BreachNotice tells them of a personal data breach that affects them.
	DisclosureMade TransactionalTemplate = "disclosure_made"
	BreachNotice   TransactionalTemplate = "breach_notice"
)

// transactional is the closed set of transactional templates.
var transactional = map[TransactionalTemplate]bool{VerifyEmail: true, AccountExists: true, GuardianConsent: true,
	PasswordReset: true, PasswordChanged: true, AccountActive: true, EmailChanging: true, NewsletterConfirm: true,
	UnsubscribeConfirm: true, GuardianPurpose: true, RequestReceived: true, RequestExtended: true, RequestClosed: true, RequestsDue: true,
	RequestConfirm: true, InactiveWarning: true, PolicyChanged: true, DisclosureMade: true, BreachNotice: true}

// Labels the outbox's sealed values are bound to.
const (
	labelRecipient = "mail_outbox.recipient"
	labelData      = "mail_outbox.data"
)

// Outbox queues transactional messages and delivers them.
type Outbox struct {
	db    *store.DB
	vault *vault.Vault
	// The subjects' wrapped keys by a list of ids, prepared at start: on the writer
	// (within the queuing transaction) and on the readers (for the dispatcher).
	keysWrite, keysRead *sql.Stmt
	sender              BulkSender
	wake                chan struct{}
	log                 *slog.Logger
	siteName            string
	now                 func() time.Time
	text                *texttemplate.Template
	html                *htmltemplate.Template
}

// NewOutbox parses the templates and prepares the outbox's reads of data keys; an
// error in either fails here, at start. The vault seals queued mail under its
// subject's data key and opens it for the dispatcher.
func NewOutbox(ctx context.Context, db *store.DB, v *vault.Vault, sender BulkSender, siteName string, now func() time.Time, log *slog.Logger) (*Outbox, error) {
	text, err := texttemplate.ParseFS(templateFS, "templates/*.txt")
	if err != nil {
		return nil, fmt.Errorf("mail: templates: %w", err)
	}
	html, err := htmltemplate.ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("mail: templates: %w", err)
	}
	o := &Outbox{db: db, vault: v, sender: sender, wake: make(chan struct{}, 1), log: log, siteName: siteName, now: now, text: text, html: html}
	for name := range transactional {
		if _, err := o.render(Transactional{To: "check@example.invalid", Template: name, Data: map[string]string{}}); err != nil {
			return nil, err
		}
	}
	// One statement for any number of ids (a JSON array on SQLite, an array on
	// PostgreSQL), so that it is parsed once, not at every batch for its length. On
	// SQLite a join: IN (SELECT ...) would build a temporary index at every run.
	q := `SELECT k.subject_id, ` + vault.KeyColumns("k") + ` FROM json_each($1) j JOIN vault_keys k ON k.subject_id = j.value`
	if db.Dialect == store.Postgres {
		q = `SELECT k.subject_id, ` + vault.KeyColumns("k") + ` FROM vault_keys k WHERE k.subject_id = ANY($1::text[])`
	}
	if o.keysRead, err = db.Prepare(ctx, q); err != nil {
		return nil, fmt.Errorf("mail: %w", err)
	}
	if o.keysWrite, err = db.Writer().PrepareContext(ctx, db.Rebind(q)); err != nil {
		return nil, fmt.Errorf("mail: prepare %q: %w", q, err)
	}
	return o, nil
}

func (o *Outbox) render(t Transactional) (Message, error) {
	data := map[string]string{"Site": o.siteName}
	for k, v := range t.Data {
		data[k] = v
	}
	var subj, text, html bytes.Buffer
	name := string(t.Template)
	if err := o.text.ExecuteTemplate(&subj, name+".subject.txt", data); err != nil {
		return Message{}, fmt.Errorf("mail: render %s: %w", name, err)
	}
	if err := o.text.ExecuteTemplate(&text, name+".txt", data); err != nil {
		return Message{}, fmt.Errorf("mail: render %s: %w", name, err)
	}
	if err := o.html.ExecuteTemplate(&html, name+".html", data); err != nil {
		return Message{}, fmt.Errorf("mail: render %s: %w", name, err)
	}
	return Message{
		To: t.To, Subject: strings.TrimSpace(subj.String()), Text: text.String(), HTML: html.String(), Template: name,
	}, nil
}

// Enqueue stores the mail in the outbox within tx, sealed under the data key of its
// subject (made in tx if the subject has none yet); nothing is sent unless tx commits.
func (o *Outbox) Enqueue(ctx context.Context, tx *store.Tx, t Transactional) error {
	p, err := o.Prepare(t)
	if err != nil {
		return err
	}
	return o.EnqueuePrepared(ctx, tx, p)
}

// Prepared is a transactional mail made ready ahead of the transaction that queues it,
// so that the transaction holds the writer no longer than its statements take. The
// outbox keeps the template's name and data, sealed; the dispatcher renders the message.
type Prepared struct {
	id, subject, to, template, data string
}

// About names the subject of a mail prepared before its subject was known (a new
// subscriber's id is made in the transaction that stores it).
func (p Prepared) About(subjectID string) Prepared {
	p.subject = subjectID
	return p
}

// Prepare makes a transactional mail ready to queue.
func (o *Outbox) Prepare(t Transactional) (Prepared, error) {
	if _, ok := transactional[t.Template]; !ok {
		return Prepared{}, fmt.Errorf("mail: no transactional template %q", t.Template)
	}
	// Without HTML escaping, so that an address with & or < is stored as it is and
	// an erasure's search for it (Holder.Erase) finds it.
	var data strings.Builder
	enc := json.NewEncoder(&data)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(t.Data); err != nil {
		return Prepared{}, fmt.Errorf("mail: %s: %w", t.Template, err)
	}
	return Prepared{id: o.newID(), subject: t.SubjectID, to: t.To, template: string(t.Template), data: strings.TrimSuffix(data.String(), "\n")}, nil
}

// EnqueuePrepared stores mails in the outbox within tx, each sealed under the data
// key of its subject (made in tx for a subject that has none yet: a new subscriber);
// nothing is sent unless tx commits.
func (o *Outbox) EnqueuePrepared(ctx context.Context, tx *store.Tx, ps ...Prepared) error {
	if len(ps) == 0 {
		return nil
	}
	subjects := make([]string, 0, len(ps))
	seen := make(map[string]bool, len(ps))
	for _, p := range ps {
		if p.subject == "" {
			return fmt.Errorf("mail: enqueue %s: no subject to seal the mail under", p.template)
		}
		if !seen[p.subject] {
			seen[p.subject] = true
			subjects = append(subjects, p.subject)
		}
	}
	keys, err := o.keysIn(ctx, tx, subjects)
	if err != nil {
		return fmt.Errorf("mail: enqueue: %w", err)
	}
	now := store.Millis(o.now())
	args := make([]any, 0, len(ps)*9)
	for _, p := range ps {
		k := keys[p.subject]
		args = append(args, p.id, p.subject, k.SealText(labelRecipient, p.to), p.template, k.SealText(labelData, p.data), now, "", "", "")
	}
	if err := tx.InsertRows(ctx, `INSERT INTO mail_outbox (id, subject_id, recipient, template, data, created_at, subject, text_body, html_body) VALUES `,
		9, args, ""); err != nil {
		return fmt.Errorf("mail: enqueue: %w", err)
	}
	// The dispatcher looks once tx has committed.
	tx.AfterCommit(func() {
		select {
		case o.wake <- struct{}{}:
		default:
		}
	})
	return nil
}

// keysIn returns the data keys of the subjects within tx, making the missing ones:
// one statement to read them all and, for new subjects, one to store theirs. On
// PostgreSQL another transaction may have stored a key for the same subject since
// the read: a third statement reads the new keys back, and the stored key is the
// subject's. On SQLite nothing can: a write transaction holds the database's write
// lock from its start (BEGIN IMMEDIATE), so the read is the truth.
func (o *Outbox) keysIn(ctx context.Context, tx *store.Tx, subjects []string) (map[string]*vault.Key, error) {
	keys := make(map[string]*vault.Key, len(subjects))
	stored, err := o.wrappedKeys(ctx, tx, subjects)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, s := range subjects {
		w, ok := stored[s]
		if !ok {
			missing = append(missing, s)
			continue
		}
		if keys[s], err = o.vault.Unwrap(s, w.wrapped, w.epoch); err != nil {
			return nil, err
		}
	}
	if len(missing) == 0 {
		return keys, nil
	}
	made := make(map[string][]byte, len(missing))
	args := make([]any, 0, len(missing)*4)
	for _, s := range missing {
		k, row, err := o.vault.NewKey(s)
		if err != nil {
			return nil, err
		}
		keys[s], made[s] = k, row[1].([]byte)
		args = append(args, row...)
	}
	if err := tx.InsertRows(ctx, `INSERT INTO vault_keys (subject_id, wrapped, epoch, created_at) VALUES `, 4, args,
		` ON CONFLICT (subject_id) DO NOTHING`); err != nil {
		return nil, err
	}
	if tx.Dialect() == store.SQLite {
		return keys, nil
	}
	if stored, err = o.wrappedKeys(ctx, tx, missing); err != nil {
		return nil, err
	}
	for _, s := range missing {
		w, ok := stored[s]
		switch {
		case !ok:
			return nil, fmt.Errorf("the data key of %s vanished as it was made", s)
		case !bytes.Equal(w.wrapped, made[s]):
			if keys[s], err = o.vault.Unwrap(s, w.wrapped, w.epoch); err != nil {
				return nil, err
			}
		}
	}
	return keys, nil
}

type wrappedKey struct {
	wrapped []byte
	epoch   int64
}

// wrappedKeys reads the wrapped data keys of the subjects, within tx or, if tx is
// nil, on the readers; a subject without one (never given one, or erased) is missing
// from the map.
func (o *Outbox) wrappedKeys(ctx context.Context, tx *store.Tx, subjects []string) (map[string]wrappedKey, error) {
	var ids any = subjects
	if o.db.Dialect == store.SQLite {
		js, err := json.Marshal(subjects)
		if err != nil {
			return nil, fmt.Errorf("data keys: %w", err)
		}
		ids = string(js)
	}
	st := o.keysRead
	if tx != nil {
		st = tx.SQL().StmtContext(ctx, o.keysWrite)
	}
	rows, err := st.QueryContext(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("data keys: %w", err)
	}
	defer rows.Close()
	out := make(map[string]wrappedKey, len(subjects))
	for rows.Next() {
		var s string
		var w wrappedKey
		if err := rows.Scan(&s, &w.wrapped, &w.epoch); err != nil {
			return nil, fmt.Errorf("data keys: %w", err)
		}
		out[s] = w
	}
	return out, rows.Err()
}

// dispatchBatch is how many messages go over one connection.
const dispatchBatch = 100

// dispatchLease is how long a node holds the rows it claimed while it sends them.
const dispatchLease = 2 * time.Minute

// Dispatch delivers the outbox until ctx ends: it claims a batch of rows no other node
// holds, hands them to the sender over one connection and deletes them. A batch that
// fails waits (2 s, 4 s, ... at most 10 minutes) and goes again; a node that dies
// leaves its claim to expire. It looks when a message is queued, and every poll.
func (o *Outbox) Dispatch(ctx context.Context, poll time.Duration) {
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		for {
			n, err := o.DispatchOnce(ctx)
			if err != nil && ctx.Err() == nil {
				o.log.Warn("mail: delivery failed; will retry", "err", err)
			}
			if n < dispatchBatch || err != nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-o.wake:
		case <-t.C:
		}
	}
}

// DispatchOnce delivers one batch and says how many messages it held. It opens each
// message with its subject's data key; a message whose subject has no key any more
// (erased since it was queued) is dropped unsent. A message of an earlier release
// (no subject) is sent as it was stored.
func (o *Outbox) DispatchOnce(ctx context.Context) (int, error) {
	now := o.now()
	q := `UPDATE mail_outbox SET claimed_until = $1, attempts = attempts + 1
		WHERE claimed_until < $2 AND id IN (SELECT id FROM mail_outbox WHERE claimed_until < $2 ORDER BY created_at LIMIT $3)
		RETURNING id, subject_id, recipient, subject, text_body, html_body, template, data, attempts`
	rows, err := o.db.QueryWriter(ctx, q, store.Millis(now.Add(dispatchLease)), store.Millis(now), dispatchBatch)
	if err != nil {
		return 0, fmt.Errorf("mail: claim: %w", err)
	}
	type claimed struct {
		m        Message
		subject  sql.NullString
		data     string
		attempts int
	}
	var batch []claimed
	var subjects []string
	seen := map[string]bool{}
	for rows.Next() {
		var c claimed
		if err := rows.Scan(&c.m.ID, &c.subject, &c.m.To, &c.m.Subject, &c.m.Text, &c.m.HTML, &c.m.Template, &c.data, &c.attempts); err != nil {
			rows.Close()
			return 0, fmt.Errorf("mail: claim: %w", err)
		}
		if c.subject.Valid && !seen[c.subject.String] {
			seen[c.subject.String] = true
			subjects = append(subjects, c.subject.String)
		}
		batch = append(batch, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("mail: claim: %w", err)
	}
	if len(batch) == 0 {
		return 0, nil
	}
	// The subjects' keys, read after the claim: a subject erased before this read has
	// no key, and its mail goes nowhere; one erased after it loses its mail in remove.
	keys := make(map[string]*vault.Key, len(subjects))
	keyErr := map[string]error{}
	if len(subjects) > 0 {
		stored, err := o.wrappedKeys(ctx, nil, subjects)
		if err != nil {
			return 0, fmt.Errorf("mail: claim: %w", err) // the claim expires, and the batch goes again
		}
		for s, w := range stored {
			if keys[s], err = o.vault.Unwrap(s, w.wrapped, w.epoch); err != nil {
				delete(keys, s)
				keyErr[s] = err
			}
		}
	}
	var msgs []Message
	var ids []any
	var unrenderable, erased []any
	maxAttempts := 0
	for _, c := range batch {
		m, data := c.m, c.data
		if c.subject.Valid {
			k := keys[c.subject.String]
			if k == nil && keyErr[c.subject.String] == nil {
				erased = append(erased, m.ID)
				continue
			}
			var err error
			if k == nil {
				err = keyErr[c.subject.String]
			} else {
				var toErr, dataErr error
				m.To, toErr = k.OpenText(labelRecipient, m.To)
				data, dataErr = k.OpenText(labelData, data)
				err = errors.Join(toErr, dataErr)
			}
			if err != nil {
				// A damaged value, or a key this node cannot unwrap: set aside for a
				// day like a message that cannot be rendered, and said in the log (by
				// id only).
				o.log.Error("mail: a queued message cannot be opened; set aside", "id", m.ID, "err", err)
				unrenderable = append(unrenderable, m.ID)
				continue
			}
		}
		if data != "" { // queued as template data (rows from before keep their bodies)
			r, err := o.renderStored(m.ID, m.To, m.Template, data)
			if err != nil {
				// It will not render next time either: set aside for a day, so that it
				// does not hold back the others, and said in the log (by id only).
				o.log.Error("mail: a queued message cannot be rendered; set aside", "id", m.ID, "err", err)
				unrenderable = append(unrenderable, m.ID)
				continue
			}
			m = r
		}
		msgs = append(msgs, m)
		ids = append(ids, m.ID)
		maxAttempts = max(maxAttempts, c.attempts)
	}
	if len(erased) > 0 {
		if _, err := o.db.ExecContext(ctx, `DELETE FROM mail_outbox WHERE id IN (`+store.Placeholders(1, len(erased))+`)`, erased...); err != nil {
			return 0, fmt.Errorf("mail: drop: %w", err)
		}
		o.log.Info("mail: dropped queued messages unsent: their subject was erased", "messages", len(erased))
	}
	for _, id := range unrenderable {
		if _, err := o.db.ExecContext(ctx, `UPDATE mail_outbox SET claimed_until = $1 WHERE id = $2`,
			store.Millis(now.Add(24*time.Hour)), id); err != nil {
			return 0, fmt.Errorf("mail: set aside: %w", err)
		}
	}
	if len(msgs) == 0 {
		return len(batch), nil
	}
	// What the server took, or refused for good (no such mailbox), leaves the outbox;
	// what failed for a while waits (2 s, 4 s, ... at most 10 minutes) and goes again,
	// alone: nobody gets a message twice because another was refused.
	sendErr := o.sender.SendAll(ctx, msgs)
	done, retry := ids, []any(nil)
	refused := 0
	if sendErr != nil {
		var pe *PartialError
		if !errors.As(sendErr, &pe) { // nothing is known handed over
			pe = &PartialError{Failed: map[int]bool{}}
			for i := range msgs {
				pe.Failed[i] = true
			}
		}
		done = nil
		for i, m := range msgs {
			temporary, failed := pe.Failed[i]
			switch {
			case !failed:
				done = append(done, m.ID)
			case temporary:
				retry = append(retry, m.ID)
			default:
				refused++
				done = append(done, m.ID)
			}
		}
	}
	if len(retry) > 0 {
		wait := time.Duration(min(1<<min(maxAttempts, 10), 600)) * time.Second
		// Best effort: a message whose new wait is not written is retried when its claim
		// runs out, only sooner than the backoff asks.
		if _, err := o.db.ExecContext(context.WithoutCancel(ctx), `UPDATE mail_outbox SET claimed_until = $`+fmt.Sprint(len(retry)+1)+
			` WHERE id IN (`+store.Placeholders(1, len(retry))+`)`, append(retry, store.Millis(o.now().Add(wait)))...); err != nil {
			o.log.Warn("mail: putting off messages to retry", "messages", len(retry), "err", err)
		}
	}
	if len(done) > 0 {
		if err := o.remove(ctx, done); err != nil {
			return len(batch), err
		}
	}
	if sendErr != nil {
		return len(batch), fmt.Errorf("mail: %d of %d message(s) not delivered (%d refused for good): %s",
			len(retry)+refused, len(msgs), refused, redactAddresses(sendErr.Error()))
	}
	return len(batch), nil
}

// remove deletes delivered rows. A row that vanished while its message was being handed
// over was erased with its recipient meanwhile: a sender that still holds the message
// (the .eml folder) takes it back, so the erasure leaves nothing.
func (o *Outbox) remove(ctx context.Context, ids []any) error {
	gone, err := o.db.QueryWriter(context.WithoutCancel(ctx), `DELETE FROM mail_outbox WHERE id IN (`+
		store.Placeholders(1, len(ids))+`) RETURNING id`, ids...)
	if err != nil {
		return fmt.Errorf("mail: delivered but not removed: %w", err)
	}
	removed := map[string]bool{}
	for gone.Next() {
		var id string
		if err := gone.Scan(&id); err == nil {
			removed[id] = true
		}
	}
	gone.Close()
	var erased []string
	for _, id := range ids {
		if !removed[id.(string)] {
			erased = append(erased, id.(string))
		}
	}
	if r, ok := o.sender.(Recaller); ok && len(erased) > 0 {
		if err := r.Recall(erased); err != nil {
			return fmt.Errorf("mail: recall: %w", err)
		}
	}
	return nil
}

// renderStored renders a queued row's template and data.
func (o *Outbox) renderStored(id, to, template, data string) (Message, error) {
	t := Transactional{To: to, Template: TransactionalTemplate(template)}
	if !transactional[t.Template] {
		return Message{}, fmt.Errorf("mail: queued message %s: no template %q", id, template)
	}
	if err := json.Unmarshal([]byte(data), &t.Data); err != nil {
		return Message{}, fmt.Errorf("mail: queued message %s: %w", id, err)
	}
	m, err := o.render(t)
	m.ID = id
	return m, err
}

// Recaller is a sender that still holds what it was given and can take it back.
type Recaller interface {
	Recall(ids []string) error
}

func (o *Outbox) newID() string { return store.SortedID(o.now()) }

// containing is a LIKE pattern (with ESCAPE '!') for text that contains s: the same on
// both engines (PostgreSQL would otherwise read a backslash in s as an escape).
func containing(s string) string {
	r := strings.NewReplacer("!", "!!", "%", "!%", "_", "!_")
	return "%" + r.Replace(s) + "%"
}

// Holder is the outbox's entry in the data map: messages waiting to be handed over,
// and, in the embedded default, the folder of .eml files that stands in for the mail
// server (Dir; "" with SMTP, where sent mail leaves Steward's control).
type Holder struct {
	Dir string
	// Index is the blind index of addresses: the addresses a subject proved before the
	// current one are known by it alone (datamap.Subject.Proven).
	Index *vault.Index
}

// bodiesPlain is why the rendered columns are not sealed.
const bodiesPlain = "empty in this release's rows (a message is rendered from its sealed data when handed over); " +
	"only rows queued by an earlier release, sent within seconds of the upgrade, hold text here"

var outboxTable = datamap.Table{Name: "mail_outbox", Subject: "subject_id", Columns: []datamap.Column{
	{Name: "id", NotPersonal: "random message id"},
	{Name: "subject_id", Categories: []string{"user.unique_id"},
		Plain: "a random id: the subject whose data key seals the message, and whose erasure takes it (NULL in an earlier release's rows)"},
	{Name: "recipient", Categories: []string{"user.contact.email"}, Sealed: true},
	{Name: "subject", Categories: []string{"user.content"}, Plain: bodiesPlain},
	{Name: "text_body", Categories: []string{"user.content", "user.name"}, Plain: bodiesPlain},
	{Name: "html_body", Categories: []string{"user.content", "user.name"}, Plain: bodiesPlain},
	{Name: "template", NotPersonal: "name of a fixed template"},
	{Name: "data", Categories: []string{"user.name", "user.contact.email", "user.content"}, Sealed: true},
	{Name: "created_at", NotPersonal: "time the message was queued", Time: true},
	{Name: "claimed_until", NotPersonal: "end of a node's claim on the message", Time: true},
	{Name: "attempts", NotPersonal: "delivery attempts so far"},
}}

// Declaration describes the outbox.
func (Holder) Declaration() datamap.Declaration {
	return datamap.Declaration{
		Name:        "mail_outbox",
		Description: "Service mails waiting to be handed to the mail server.",
		Purpose:     "Deliver transactional mail (confirmations, password resets, guardian consent).",
		LawfulBasis: "contract",
		Retention:   "Until the message is handed to the mail server (seconds), then deleted.",
		Tables:      []datamap.Table{outboxTable},
	}
}

// Export returns the messages still waiting about the subject, opened.
func (Holder) Export(ctx context.Context, q store.Querier, s datamap.Subject) ([]datamap.Section, error) {
	sec, err := s.Select(ctx, q, outboxTable, "subject_id = $1", s.ID)
	return []datamap.Section{sec}, err
}

// Erase drops every message waiting about the subject (by subject_id: their key is
// shredded already, so nothing of it would open), and the .eml files to or naming one of
// their addresses: the current one by its text, those the subject proved before by
// their blind index. Only proven addresses count: mail to an address the subject merely
// typed (s.Pending) is its owner's. Messages an earlier release queued in plain text
// (no subject_id) are found by address as they were then.
func (h Holder) Erase(ctx context.Context, tx *store.Tx, s datamap.Subject) error {
	if s.ID != "" {
		if _, err := tx.ExecContext(ctx, `DELETE FROM mail_outbox WHERE subject_id = $1`, s.ID); err != nil {
			return fmt.Errorf("mail: erase: %w", err)
		}
	}
	var terms []datamap.Term
	if s.Email != "" {
		e := strings.ToLower(s.Email)
		// data is JSON: an address with a quote or a backslash is stored escaped.
		quoted, _ := json.Marshal(e)
		if _, err := tx.ExecContext(ctx, `DELETE FROM mail_outbox WHERE subject_id IS NULL AND (recipient = $1 OR lower(text_body) LIKE $2 ESCAPE '!'
			OR lower(data) LIKE $2 ESCAPE '!' OR lower(data) LIKE $3 ESCAPE '!')`,
			s.Email, containing(e), containing(strings.Trim(string(quoted), `"`))); err != nil {
			return fmt.Errorf("mail: erase: %w", err)
		}
		terms = append(terms, datamap.Term{Kind: "email", Value: e})
	}
	var proven map[string]bool
	if len(s.Proven) > 0 {
		if h.Index == nil {
			return errors.New("mail: erase: the subject's earlier addresses are known by their blind index, and the holder has none to compare with")
		}
		proven = make(map[string]bool, len(s.Proven))
		for _, x := range s.Proven {
			proven[x] = true
		}
		if err := h.eraseQueued(ctx, tx, proven); err != nil {
			return err
		}
	}
	if h.Dir == "" || (len(terms) == 0 && len(proven) == 0) {
		return nil
	}
	found, err := h.files(terms, proven)
	if err != nil {
		return err
	}
	for name := range found {
		if err := os.Remove(filepath.Join(h.Dir, name)); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("mail: erase: %w", err)
		}
	}
	return nil
}

// eraseQueued drops the plain messages of an earlier release to, or mentioning, an
// address whose blind index is among proven. The outbox holds messages for seconds,
// so reading it is cheap; a stored address can only be compared by hashing it.
func (h Holder) eraseQueued(ctx context.Context, tx *store.Tx, proven map[string]bool) error {
	rows, err := tx.QueryContext(ctx, `SELECT id, recipient, text_body, data FROM mail_outbox WHERE subject_id IS NULL`)
	if err != nil {
		return fmt.Errorf("mail: erase: %w", err)
	}
	var ids []any
	for rows.Next() {
		var id, to, text, data string
		if err := rows.Scan(&id, &to, &text, &data); err != nil {
			rows.Close()
			return fmt.Errorf("mail: erase: %w", err)
		}
		values := []string{to, text}
		var fields map[string]string
		if data != "" && json.Unmarshal([]byte(data), &fields) == nil {
			for _, v := range fields {
				values = append(values, v)
			}
		}
		if proven[h.Index.Address(to)] || h.mentions(strings.ToLower(strings.Join(values, "\n")), proven) {
			ids = append(ids, id)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("mail: erase: %w", err)
	}
	if len(ids) == 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM mail_outbox WHERE id IN (`+store.Placeholders(1, len(ids))+`)`, ids...); err != nil {
		return fmt.Errorf("mail: erase: %w", err)
	}
	return nil
}

// addressRE finds what looks like an address in lower-case text. Its local part is
// generous (a candidate that is no address only costs a hash); its domain stops at
// anything a domain cannot hold (the &gt; of an HTML part).
var addressRE = regexp.MustCompile(`[^\s<>()\[\]\\,;:@"]+@[\p{L}\p{N}.-]+`)

// mentions reports whether lower-case text holds an address whose blind index is
// among proven.
func (h Holder) mentions(text string, proven map[string]bool) bool {
	for _, m := range addressRE.FindAllString(text, -1) {
		// Punctuation around an address in prose ('a@b.org'.) may have been taken in.
		for _, c := range []string{m, strings.Trim(m, "'`.!?*=+-_/|~{}")} {
			if proven[h.Index.Address(c)] {
				return true
			}
		}
	}
	return false
}

// ScanTerms searches the .eml folder for the terms.
func (h Holder) ScanTerms(_ context.Context, terms []datamap.Term) ([]datamap.Finding, error) {
	if h.Dir == "" {
		return nil, nil
	}
	found, err := h.files(terms, nil)
	if err != nil {
		return nil, err
	}
	var out []datamap.Finding
	for name, kinds := range found {
		for _, k := range kinds {
			out = append(out, datamap.Finding{Where: "outbox file " + name, Kind: k, Count: 1})
		}
	}
	return out, nil
}

// files returns the .eml files of the folder holding any of the terms (lower case), or
// an address whose blind index is among proven, with the kinds found, reading each
// message decoded (quoted-printable, base64).
func (h Holder) files(terms []datamap.Term, proven map[string]bool) (map[string][]string, error) {
	entries, err := os.ReadDir(h.Dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mail: outbox folder: %w", err)
	}
	out := map[string][]string{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".eml") {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(h.Dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("mail: outbox folder: %w", err)
		}
		text := strings.ToLower(decodeMessage(raw))
		for _, t := range terms {
			if strings.Contains(text, t.Value) {
				out[e.Name()] = append(out[e.Name()], t.Kind)
			}
		}
		if len(proven) > 0 && h.mentions(text, proven) {
			out[e.Name()] = append(out[e.Name()], "earlier email")
		}
	}
	return out, nil
}

// decodeMessage returns a message's headers and every text part decoded.
func decodeMessage(raw []byte) string {
	var b strings.Builder
	b.Write(raw)
	if qp, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(raw))); err == nil {
		b.WriteString("\n")
		b.Write(qp)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(line)
		if len(line) >= 16 && !strings.ContainsAny(line, " :") {
			if dec, err := base64.StdEncoding.DecodeString(line); err == nil {
				b.WriteString("\n")
				b.Write(dec)
			}
		}
	}
	return b.String()
}
