// Package mail owns the outbox: transactional messages are rendered from embedded
// templates, stored in the mail_outbox table in the same transaction as the change that
// causes them, and delivered by a dispatcher on each node through a Sender (.eml files
// in a folder, or SMTP), many over one connection. A row lives only until its message
// is handed over, so the outbox keeps no copy of what was sent.
package mail

import (
	"bytes"
	"context"
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
	To       string
	Template TransactionalTemplate
	Data     map[string]string
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
)

// transactional is the closed set of transactional templates.
var transactional = map[TransactionalTemplate]bool{VerifyEmail: true, AccountExists: true, GuardianConsent: true,
	PasswordReset: true, PasswordChanged: true, AccountActive: true, EmailChanging: true, NewsletterConfirm: true}

// Outbox queues transactional messages and delivers them.
type Outbox struct {
	db       *store.DB
	sender   BulkSender
	wake     chan struct{}
	log      *slog.Logger
	siteName string
	from     string
	now      func() time.Time
	text     *texttemplate.Template
	html     *htmltemplate.Template
}

// NewOutbox parses the templates; a template error fails here, at start.
func NewOutbox(db *store.DB, sender BulkSender, siteName string, now func() time.Time, log *slog.Logger) (*Outbox, error) {
	text, err := texttemplate.ParseFS(templateFS, "templates/*.txt")
	if err != nil {
		return nil, fmt.Errorf("mail: templates: %w", err)
	}
	html, err := htmltemplate.ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("mail: templates: %w", err)
	}
	o := &Outbox{db: db, sender: sender, wake: make(chan struct{}, 1), log: log, siteName: siteName, now: now, text: text, html: html}
	for name := range transactional {
		if _, err := o.render(Transactional{To: "check@example.invalid", Template: name, Data: map[string]string{}}); err != nil {
			return nil, err
		}
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

// Enqueue renders the mail and stores it in the outbox within tx, with its delivery
// job; nothing is sent unless tx commits.
func (o *Outbox) Enqueue(ctx context.Context, tx *store.Tx, t Transactional) error {
	p, err := o.Prepare(t)
	if err != nil {
		return err
	}
	return o.EnqueuePrepared(ctx, tx, p)
}

// Prepared is a transactional mail made ready ahead of the transaction that queues it,
// so that the transaction holds the writer no longer than its statements take. The
// outbox keeps the template's name and data; the dispatcher renders the message.
type Prepared struct {
	id, to, template, data string
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
	return Prepared{id: newID(), to: t.To, template: string(t.Template), data: strings.TrimSuffix(data.String(), "\n")}, nil
}

// EnqueuePrepared stores mails in the outbox within tx; nothing is sent unless tx
// commits.
func (o *Outbox) EnqueuePrepared(ctx context.Context, tx *store.Tx, ps ...Prepared) error {
	now := store.Millis(o.now())
	args := make([]any, 0, len(ps)*8)
	for _, p := range ps {
		args = append(args, p.id, p.to, p.template, p.data, now, "", "", "")
	}
	if err := tx.InsertRows(ctx, `INSERT INTO mail_outbox (id, recipient, template, data, created_at, subject, text_body, html_body) VALUES `,
		8, args, ""); err != nil {
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

// DispatchOnce delivers one batch and says how many messages it held.
func (o *Outbox) DispatchOnce(ctx context.Context) (int, error) {
	now := o.now()
	q := `UPDATE mail_outbox SET claimed_until = $1, attempts = attempts + 1
		WHERE claimed_until < $2 AND id IN (SELECT id FROM mail_outbox WHERE claimed_until < $2 ORDER BY created_at LIMIT $3)
		RETURNING id, recipient, subject, text_body, html_body, template, data, attempts`
	rows, err := o.db.QueryWriter(ctx, q, store.Millis(now.Add(dispatchLease)), store.Millis(now), dispatchBatch)
	if err != nil {
		return 0, fmt.Errorf("mail: claim: %w", err)
	}
	var msgs []Message
	var ids []any
	var unrenderable []any
	maxAttempts := 0
	for rows.Next() {
		var m Message
		var data string
		var attempts int
		if err := rows.Scan(&m.ID, &m.To, &m.Subject, &m.Text, &m.HTML, &m.Template, &data, &attempts); err != nil {
			rows.Close()
			return 0, fmt.Errorf("mail: claim: %w", err)
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
		maxAttempts = max(maxAttempts, attempts)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("mail: claim: %w", err)
	}
	for _, id := range unrenderable {
		if _, err := o.db.ExecContext(ctx, `UPDATE mail_outbox SET claimed_until = $1 WHERE id = $2`,
			store.Millis(now.Add(24*time.Hour)), id); err != nil {
			return 0, fmt.Errorf("mail: set aside: %w", err)
		}
	}
	if len(msgs) == 0 {
		return len(unrenderable), nil
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
		_, _ = o.db.ExecContext(context.WithoutCancel(ctx), `UPDATE mail_outbox SET claimed_until = $`+fmt.Sprint(len(retry)+1)+
			` WHERE id IN (`+store.Placeholders(1, len(retry))+`)`, append(retry, store.Millis(o.now().Add(wait)))...)
	}
	if len(done) > 0 {
		if err := o.remove(ctx, done); err != nil {
			return len(msgs), err
		}
	}
	if sendErr != nil {
		return len(msgs), fmt.Errorf("mail: %d of %d message(s) not delivered (%d refused for good): %s",
			len(retry)+refused, len(msgs), refused, redactAddresses(sendErr.Error()))
	}
	return len(msgs), nil
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

func newID() string { return store.SortedID() }

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

var outboxTable = datamap.Table{Name: "mail_outbox", Columns: []datamap.Column{
	{Name: "id", NotPersonal: "random message id"},
	{Name: "recipient", Categories: []string{"user.contact.email"}},
	{Name: "subject", Categories: []string{"user.content"}},
	{Name: "text_body", Categories: []string{"user.content", "user.name"}},
	{Name: "html_body", Categories: []string{"user.content", "user.name"}},
	{Name: "template", NotPersonal: "name of a fixed template"},
	{Name: "data", Categories: []string{"user.name", "user.contact.email", "user.content"}},
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

// Export returns the messages still waiting for the subject.
func (Holder) Export(ctx context.Context, q store.Querier, s datamap.Subject) ([]datamap.Section, error) {
	sec, err := datamap.SelectSection(ctx, q, outboxTable, "recipient = $1", s.Email)
	return []datamap.Section{sec}, err
}

// Erase drops every message waiting for the subject, or mentioning their address (a
// guardian's mail names the child), and the .eml files that do: for the current
// address by its text, for the addresses the subject proved before by their blind
// index. Only proven addresses count: mail to an address the subject merely typed
// (s.Pending) is its owner's.
func (h Holder) Erase(ctx context.Context, tx *store.Tx, s datamap.Subject) error {
	var terms []datamap.Term
	if s.Email != "" {
		e := strings.ToLower(s.Email)
		// data is JSON: an address with a quote or a backslash is stored escaped.
		quoted, _ := json.Marshal(e)
		if _, err := tx.ExecContext(ctx, `DELETE FROM mail_outbox WHERE recipient = $1 OR lower(text_body) LIKE $2 ESCAPE '!'
			OR lower(data) LIKE $2 ESCAPE '!' OR lower(data) LIKE $3 ESCAPE '!'`,
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

// eraseQueued drops the queued messages to, or mentioning, an address whose blind
// index is among proven. The outbox holds messages for seconds, so reading it whole
// is cheap; a stored address can only be compared by hashing it.
func (h Holder) eraseQueued(ctx context.Context, tx *store.Tx, proven map[string]bool) error {
	rows, err := tx.QueryContext(ctx, `SELECT id, recipient, text_body, data FROM mail_outbox`)
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
