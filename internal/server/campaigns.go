package server

import (
	"context"
	"net/http"
	"strings"
	"time"

	"steward/internal/account"
	"steward/internal/apperr"
	"steward/internal/mail"
	"steward/internal/newsletter"
	"steward/internal/ratelimit"
)

// ruleTestSend limits a staff member's test mails: three at once, then one every 20
// seconds (three a minute). A test goes to the sender's own address only, so the
// limit keeps a stolen session from making Steward a mail cannon at one mailbox.
var ruleTestSend = ratelimit.Rule{Burst: 3, Every: 20 * time.Second}

// TestSend spends a token of the staff member's budget of test mails.
func (l *Limits) TestSend(ctx context.Context, accountID string) error {
	if l.off {
		return nil
	}
	return l.take(ctx, "test-send", ruleTestSend, accountID)
}

// errNotVerified refuses a test mail to an address its owner has not proven.
var errNotVerified = apperr.New(apperr.Conflict, "email_not_verified", "your address is not confirmed: confirm it first, then send the test")

// SendTestLimited sends a campaign's test mail to the signed-in staff member's own
// confirmed address, under the test mail limit, and returns it.
func (s *Services) SendTestLimited(r *http.Request, sess account.Session, campaignID string) (mail.Message, error) {
	if err := s.Limits.TestSend(r.Context(), sess.AccountID); err != nil {
		return mail.Message{}, err
	}
	p, err := s.Accounts.Profile(r.Context(), sess.AccountID)
	if err != nil {
		return mail.Message{}, err
	}
	if !p.EmailVerified || p.Email == "" {
		return mail.Message{}, errNotVerified
	}
	first, _, _ := strings.Cut(strings.TrimSpace(p.Name), " ")
	return s.Newsletter.SendTest(r.Context(), campaignID, newsletter.Recipient{SubjectID: sess.AccountID, Email: p.Email, FirstName: first})
}
