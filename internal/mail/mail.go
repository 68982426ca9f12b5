// Package mail owns the outbox: transactional messages are rendered from embedded
// templates, stored in the mail_outbox table in the same transaction as the change that
// causes them, and delivered by a background job through a Sender (.eml files in a
// folder, or SMTP). A row lives only until its message is handed over, so the outbox
// keeps no copy of what was sent.
package mail

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io"
	"mime/quotedprintable"
	"os"
	"path/filepath"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/riverqueue/river"

	"steward/internal/datamap"
	"steward/internal/store"
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
	Data     map[string]any
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

// Enqueuer schedules a job in the caller's transaction.
type Enqueuer interface {
	Enqueue(ctx context.Context, tx *store.Tx, args river.JobArgs) error
}

// DeliverArgs is the job that hands one outbox row to the sender; it carries only the
// row's random id.
type DeliverArgs struct {
	OutboxID string `json:"outbox_id"`
}

// Kind names the job.
func (DeliverArgs) Kind() string { return "mail_deliver" }

// Outbox stores rendered messages and delivers them.
type Outbox struct {
	db       *store.DB
	sender   Sender
	jobs     Enqueuer
	siteName string
	from     string
	now      func() time.Time
	text     *texttemplate.Template
	html     *htmltemplate.Template
}

// NewOutbox parses the templates; a template error fails here, at start.
func NewOutbox(db *store.DB, sender Sender, jobs Enqueuer, siteName string, now func() time.Time) (*Outbox, error) {
	text, err := texttemplate.ParseFS(templateFS, "templates/*.txt")
	if err != nil {
		return nil, fmt.Errorf("mail: templates: %w", err)
	}
	html, err := htmltemplate.ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("mail: templates: %w", err)
	}
	o := &Outbox{db: db, sender: sender, jobs: jobs, siteName: siteName, now: now, text: text, html: html}
	for _, name := range []TransactionalTemplate{VerifyEmail, AccountExists, GuardianConsent, PasswordReset, PasswordChanged, AccountActive, EmailChanging, NewsletterConfirm} {
		if _, err := o.render(Transactional{To: "check@example.invalid", Template: name, Data: map[string]any{}}); err != nil {
			return nil, err
		}
	}
	return o, nil
}

func (o *Outbox) render(t Transactional) (Message, error) {
	data := map[string]any{"Site": o.siteName}
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
	m, err := o.render(t)
	if err != nil {
		return err
	}
	m.ID = newID()
	_, err = tx.ExecContext(ctx,
		`INSERT INTO mail_outbox (id, recipient, subject, text_body, html_body, template, created_at)
		 VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		m.ID, m.To, m.Subject, m.Text, m.HTML, m.Template, store.Millis(o.now()))
	if err != nil {
		return fmt.Errorf("mail: enqueue: %w", err)
	}
	return o.jobs.Enqueue(ctx, tx, DeliverArgs{OutboxID: m.ID})
}

// Deliver sends the outbox row id and deletes it. A row already gone (delivered, or
// erased with its recipient) is not an error.
func (o *Outbox) Deliver(ctx context.Context, id string) error {
	var m Message
	err := o.db.QueryRowContext(ctx,
		`SELECT id, recipient, subject, text_body, html_body, template FROM mail_outbox WHERE id = $1`, id).
		Scan(&m.ID, &m.To, &m.Subject, &m.Text, &m.HTML, &m.Template)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("mail: deliver: %w", err)
	}
	if err := o.sender.Send(ctx, m); err != nil {
		// The job queue keeps and logs this error: the address must not be in it.
		return fmt.Errorf("mail: deliver %s via sender: %s", m.Template, strings.ReplaceAll(err.Error(), m.To, "<recipient>"))
	}
	if _, err := o.db.ExecContext(ctx, `DELETE FROM mail_outbox WHERE id = $1`, id); err != nil {
		return fmt.Errorf("mail: deliver: %w", err)
	}
	return nil
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Holder is the outbox's entry in the data map: messages waiting to be handed over,
// and, in the embedded default, the folder of .eml files that stands in for the mail
// server (Dir; "" with SMTP, where sent mail leaves Steward's control).
type Holder struct{ Dir string }

var outboxTable = datamap.Table{Name: "mail_outbox", Columns: []datamap.Column{
	{Name: "id", NotPersonal: "random message id"},
	{Name: "recipient", Categories: []string{"user.contact.email"}},
	{Name: "subject", Categories: []string{"user.content"}},
	{Name: "text_body", Categories: []string{"user.content", "user.name"}},
	{Name: "html_body", Categories: []string{"user.content", "user.name"}},
	{Name: "template", NotPersonal: "name of a fixed template"},
	{Name: "created_at", NotPersonal: "time the message was queued", Time: true},
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
// guardian's mail names the child), and the .eml files that do.
func (h Holder) Erase(ctx context.Context, tx *store.Tx, s datamap.Subject) error {
	for _, e := range s.Addresses() {
		if _, err := tx.ExecContext(ctx, `DELETE FROM mail_outbox WHERE recipient = $1 OR lower(text_body) LIKE $2`,
			e, "%"+strings.ToLower(e)+"%"); err != nil {
			return fmt.Errorf("mail: erase: %w", err)
		}
	}
	if h.Dir == "" {
		return nil
	}
	var terms []datamap.Term
	for _, e := range s.Addresses() {
		terms = append(terms, datamap.Term{Kind: "email", Value: strings.ToLower(e)})
	}
	found, err := h.files(terms)
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

// ScanTerms searches the .eml folder for the terms.
func (h Holder) ScanTerms(_ context.Context, terms []datamap.Term) ([]datamap.Finding, error) {
	if h.Dir == "" {
		return nil, nil
	}
	found, err := h.files(terms)
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

// files returns the .eml files of the folder holding any of the terms (lower case),
// with the kinds found, reading each message decoded (quoted-printable, base64).
func (h Holder) files(terms []datamap.Term) (map[string][]string, error) {
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
