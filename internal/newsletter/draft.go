package newsletter

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"steward/internal/apperr"
	"steward/internal/consent"
	"steward/internal/mail"
	"steward/internal/text"
)

// errCampaignNotFound is the answer for a campaign id that names none.
var errCampaignNotFound = apperr.New(apperr.NotFound, "campaign_not_found", "no such campaign")

// checkCampaign checks a draft's fields, naming the one at fault, and returns the
// subject trimmed. Only a marketing purpose that shares nothing can be mailed for.
func (s *Service) checkCampaign(purpose, subject, body string) (string, error) {
	p, ok := s.consent.Register().Purpose(purpose)
	switch {
	case !ok:
		return "", apperr.Field("purpose", "purpose_unknown", fmt.Sprintf("%q is not a registered purpose", purpose))
	case !p.Marketing || p.Sharing:
		return "", apperr.Field("purpose", "purpose_not_mail", "is not a purpose marketing mail can be sent for")
	}
	subject = strings.TrimSpace(subject)
	if subject == "" {
		return "", apperr.Field("subject", "subject_invalid", "is required: one line of at most 200 characters")
	}
	if err := text.Line("subject", subject, 200); err != nil {
		return "", err
	}
	if strings.TrimSpace(body) == "" || len(body) > 200<<10 {
		return "", apperr.Field("body", "body_invalid", "is required, at most 200 KiB of Markdown")
	}
	return subject, nil
}

// CampaignEdit is a change to a draft: the fields given (not nil) replace the draft's.
type CampaignEdit struct {
	Purpose *string
	Subject *string
	Body    *string
}

// UpdateCampaign changes a draft. A campaign being sent or sent is a conflict: what
// its recipients got stays as it was.
func (s *Service) UpdateCampaign(ctx context.Context, id string, e CampaignEdit) (Campaign, error) {
	c, err := s.Campaign(ctx, id)
	if err != nil {
		return Campaign{}, err
	}
	if err := c.CheckDraft("changed"); err != nil {
		return Campaign{}, err
	}
	if e.Purpose != nil {
		c.Purpose = *e.Purpose
	}
	if e.Subject != nil {
		c.Subject = *e.Subject
	}
	if e.Body != nil {
		c.Body = *e.Body
	}
	if c.Subject, err = s.checkCampaign(c.Purpose, c.Subject, c.Body); err != nil {
		return Campaign{}, err
	}
	// Only while it is a draft: a send that started meanwhile keeps what it started with.
	res, err := s.db.ExecContext(ctx, `UPDATE campaigns SET purpose = $1, subject = $2, body = $3 WHERE id = $4 AND status = $5`,
		c.Purpose, c.Subject, c.Body, id, CampaignDraft)
	if err != nil {
		return Campaign{}, fmt.Errorf("newsletter: update campaign: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return Campaign{}, fmt.Errorf("newsletter: update campaign: %w", err)
	} else if n != 1 {
		return Campaign{}, s.notDraft(ctx, id, "changed")
	}
	return c, nil
}

// DeleteCampaign deletes a draft; a campaign being sent or sent is a conflict (its
// deliveries are the record of whom it went to).
func (s *Service) DeleteCampaign(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM campaigns WHERE id = $1 AND status = $2`, id, CampaignDraft)
	if err != nil {
		return fmt.Errorf("newsletter: delete campaign: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("newsletter: delete campaign: %w", err)
	} else if n != 1 {
		return s.notDraft(ctx, id, "deleted")
	}
	return nil
}

// CheckDraft returns nil for a draft, else the conflict of what is to be done to it
// ("changed", "deleted"; "" for a send).
func (c Campaign) CheckDraft(done string) error {
	if c.Status == CampaignDraft {
		return nil
	}
	return errNotDraft(done)
}

// errNotDraft is the conflict of changing a campaign that is no longer a draft.
func errNotDraft(done string) error {
	if done == "" {
		return apperr.New(apperr.Conflict, "campaign_not_draft", "this campaign was already sent")
	}
	return apperr.New(apperr.Conflict, "campaign_not_draft", "only a draft can be "+done+": this campaign is being sent or was sent")
}

// ErrDraftChanged is the conflict of a send or change meant for a version of a draft
// that was changed meanwhile.
var ErrDraftChanged = apperr.New(apperr.Conflict, "campaign_changed", "the draft was changed meanwhile: look at it again")

// notDraft says why a statement meant for a draft changed no row: the campaign does
// not exist, is no longer a draft, or (still a draft) was changed meanwhile.
func (s *Service) notDraft(ctx context.Context, id, done string) error {
	var status string
	err := s.db.QueryRowContext(ctx, `SELECT status FROM campaigns WHERE id = $1`, id).Scan(&status)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return errCampaignNotFound
	case err != nil:
		return fmt.Errorf("newsletter: campaign: %w", err)
	case status == CampaignDraft:
		return ErrDraftChanged
	}
	return errNotDraft(done)
}

// Version is a digest of what a draft would send (its purpose, subject and body): a
// confirmation carries it, so that a send confirmed for one version does not start
// another.
func (c Campaign) Version() string {
	h := sha256.New()
	for _, v := range []string{c.Purpose, c.Subject, c.Body} {
		h.Write([]byte(v))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// compose builds a campaign's mail to r: the text part (the Markdown as plain text)
// and the HTML part (in the site's layout), each with the footer naming the purpose
// and the opt-out link, and the open beacon's address if it is given.
func (s *Service) compose(c Campaign, p consent.Purpose, body mailBody, r Recipient, unsubscribe, beacon string, test bool) mail.Message {
	greeting := "Hello,"
	if r.FirstName != "" {
		greeting = "Hello " + r.FirstName + ","
	}
	var t strings.Builder
	if test {
		t.WriteString("This is a test: it was sent to you alone to check the campaign; its opt-out link does nothing.\n\n")
	}
	t.WriteString(greeting + "\n\n" + body.Text)
	t.WriteString("\n-- \nYou receive this from " + s.site + " because you agreed to: " + p.Name + ".\nUnsubscribe with one click: " + unsubscribe + "\n")
	h := ""
	frame, err := body.layout(mail.CampaignLayout{Site: s.site, SiteURL: s.baseURL, Subject: c.Subject, Purpose: p.Name, Test: test})
	if err != nil {
		// The layout is embedded and takes strings only: it cannot fail but for a bug
		// in it, which the tests would show. The text part still carries everything,
		// the opt-out link included.
		s.log.Error("newsletter: campaign layout; sending the text part alone", "campaign", c.ID, "err", err)
	} else {
		h = frame.Fill(greeting, unsubscribe, beacon)
	}
	return mail.Message{To: r.Email, Subject: c.Subject, Text: t.String(), HTML: h, Template: "campaign"}
}

// campaignMail reads a campaign, its purpose and its body rendered.
func (s *Service) campaignMail(ctx context.Context, id string) (Campaign, consent.Purpose, mailBody, error) {
	c, err := s.Campaign(ctx, id)
	if err != nil {
		return Campaign{}, consent.Purpose{}, mailBody{}, err
	}
	p, ok := s.consent.Register().Purpose(c.Purpose)
	if !ok {
		p = consent.Purpose{Key: c.Purpose, Name: c.Purpose}
	}
	body, err := s.body(c)
	if err != nil {
		return Campaign{}, consent.Purpose{}, mailBody{}, err
	}
	return c, p, body, nil
}

// PreviewMail renders the campaign as a sample recipient would get it, with the
// campaign.
func (s *Service) PreviewMail(ctx context.Context, id string) (mail.Message, Campaign, error) {
	c, p, body, err := s.campaignMail(ctx, id)
	if err != nil {
		return mail.Message{}, Campaign{}, err
	}
	tid := make([]byte, 10)
	return s.render(c, p, body, Recipient{Email: "preview@example.invalid", FirstName: "Ada"}, s.token(tid, s.now()), false), c, nil
}

// TestSubject marks the subject of a test mail.
const TestSubject = "[Test] "

// SendTest sends the campaign, as its recipients would get it, to one address: its
// author's own, to check it. The subject says it is a test; it is no delivery (no
// count, no token): its opt-out link leads to a page that says so, and it carries no
// List-Unsubscribe and no open beacon. It can be sent in any state.
func (s *Service) SendTest(ctx context.Context, id string, to Recipient) (mail.Message, error) {
	c, p, body, err := s.campaignMail(ctx, id)
	if err != nil {
		return mail.Message{}, err
	}
	m := s.compose(c, p, body, to, s.baseURL+"/unsubscribe/test", "", true)
	var mid [8]byte
	_, _ = rand.Read(mid[:]) // crypto/rand.Read never fails (Go 1.24)
	m.ID = hex.EncodeToString(mid[:])
	m.Subject = TestSubject + c.Subject
	m.Template = "campaign_test"
	if err := s.sender.SendAll(ctx, []mail.Message{m}); err != nil {
		return mail.Message{}, fmt.Errorf("newsletter: test mail: %w", err)
	}
	return m, nil
}
