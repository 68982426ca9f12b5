package newsletter

import (
	"context"

	"steward/internal/apperr"
	"steward/internal/consent"
	"steward/internal/datamap"
	"steward/internal/store"
)

// Accounts is what the newsletter needs of the account capability: whose address an
// address is.
type Accounts interface {
	// Lookup finds an account by address; an unknown one is an apperr.NotFound.
	Lookup(ctx context.Context, emailOrID string) (datamap.Subject, error)
}

// MailedUnsubscribe is a mail to the unsubscribe address, as the inbound listener
// read it: the envelope sender, the From: header's address, the token of a
// campaign's List-Unsubscribe address ("" for the plain address), and the client's IP.
type MailedUnsubscribe struct {
	Sender, From, Token, RemoteIP string
}

// UnsubscribeByMail honours a mail to the unsubscribe address. With a token (from a
// campaign's List-Unsubscribe) it withdraws that campaign's purpose; without, every
// marketing consent of the member or subscriber whose address sent the mail (envelope
// sender and From: header). An unknown address or a bad token is no error: the sender
// must not retry. A failure to look the address up is: the sender tries again later.
func (s *Service) UnsubscribeByMail(ctx context.Context, m MailedUnsubscribe) error {
	if m.Token != "" {
		_, err := s.Unsubscribe(ctx, m.Token, consent.SourceInboundEmail, map[string]string{"sender": m.Sender, "ip": m.RemoteIP})
		if apperr.KindOf(err) != "" {
			return nil // a forged or expired token: nothing to retry
		}
		return err
	}
	decisions := map[string]consent.Decision{}
	for _, p := range s.consent.Register().Purposes {
		if p.Marketing {
			decisions[p.Key] = consent.Withdrawn
		}
	}
	seen := map[string]bool{}
	for _, addr := range []string{m.Sender, m.From} {
		if addr == "" || seen[addr] {
			continue
		}
		seen[addr] = true
		subject, err := s.mailSubject(ctx, addr)
		if err != nil {
			return err // the sender retries later
		}
		if subject == "" {
			continue // nobody we know
		}
		if err := s.consent.Apply(ctx, subject, decisions, nil, consent.SourceInboundEmail,
			map[string]string{"sender": addr, "ip": m.RemoteIP}); err != nil {
			return err
		}
		for p := range decisions {
			if err := s.db.InTx(ctx, func(tx *store.Tx) error {
				return s.Suppress(ctx, tx, addr, p, "unsubscribed by mail")
			}); err != nil {
				return err
			}
		}
	}
	return nil
}

// mailSubject is the member, or else the subscriber, whose address addr is; "" when
// neither is known.
func (s *Service) mailSubject(ctx context.Context, addr string) (string, error) {
	subj, err := s.members.Lookup(ctx, addr)
	if err == nil {
		return subj.ID, nil
	}
	if apperr.KindOf(err) != apperr.NotFound {
		return "", err
	}
	id, err := s.Lookup(ctx, addr)
	if apperr.KindOf(err) == apperr.NotFound {
		return "", nil
	}
	return id, err
}
