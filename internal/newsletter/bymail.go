package newsletter

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"steward/internal/account"
	"steward/internal/apperr"
	"steward/internal/consent"
	"steward/internal/datamap"
	"steward/internal/mail"
	"steward/internal/ratelimit"
	"steward/internal/store"
)

// Accounts is what the newsletter needs of the account capability: whose address an
// address is.
type Accounts interface {
	// Lookup finds an account by address; an unknown one is an apperr.NotFound.
	Lookup(ctx context.Context, emailOrID string) (datamap.Subject, error)
	// HoldForGuardian reports, in the confirmation's transaction, whether the
	// address (its blind index) is a child's account whose opt-in to purpose waits
	// for the guardian (who it asks).
	HoldForGuardian(ctx context.Context, tx *store.Tx, addressHash string, purpose account.AskedPurpose) (bool, error)
}

// MailedUnsubscribe is a mail to the unsubscribe address, as the inbound listener
// read it: the envelope sender, the From: header's address, the token of a
// campaign's List-Unsubscribe address ("" for the plain address), the client's IP,
// and which check tied the From: address's domain to the mail.
type MailedUnsubscribe struct {
	Sender, From, Token, RemoteIP string
	// Authenticated is "dkim:DOMAIN aligned" or "spf:DOMAIN aligned" when a DKIM
	// signature or an SPF pass aligned with From's domain (DMARC's relaxed
	// alignment); "" when none did.
	Authenticated string
}

// The evidence a mailed unsubscribe leaves in the consent ledger says what proved it.
const (
	checkToken = "token"                    // unsubscribe+TOKEN@: the campaign's signed token
	checkLink  = "confirmation link opened" // the plain address, confirmed by the link mailed back
)

// UnsubscribeByMail honours a mail to the unsubscribe address. With a token (from a
// campaign's List-Unsubscribe) it withdraws that campaign's purpose. Without, the
// From: address is acted on only when the mail is authenticated for its domain: every
// marketing consent of the member or subscriber with that address is withdrawn and
// the address suppressed. An unauthenticated mail can be forged by anyone, so it
// changes nothing: the address is mailed a link that does the same once opened, at
// most once an hour (the listener must not be a way to mail-bomb someone). The
// envelope sender is never acted on: it is a bounce address, and only From: is what
// the checks align with. An unknown address or a bad token is no error: the sender
// must not retry. A failure to look the address up is: the sender tries again later.
func (s *Service) UnsubscribeByMail(ctx context.Context, m MailedUnsubscribe) error {
	if m.Token != "" {
		_, err := s.Unsubscribe(ctx, m.Token, consent.SourceInboundEmail,
			map[string]string{"sender": m.Sender, "ip": m.RemoteIP, "check": checkToken})
		if apperr.KindOf(err) != "" {
			return nil // a forged or expired token: nothing to retry
		}
		return err
	}
	if m.From == "" {
		return nil // nobody to act for, nor to ask
	}
	subject, err := s.mailSubject(ctx, m.From)
	if err != nil {
		return err // the sender retries later
	}
	if subject == "" {
		return nil // nobody we know
	}
	if m.Authenticated == "" {
		return s.askToConfirm(ctx, subject, m.From)
	}
	return s.unsubscribeAll(ctx, subject, s.AddressHash(m.From), consent.SourceInboundEmail,
		map[string]string{"sender": m.From, "ip": m.RemoteIP, "check": m.Authenticated})
}

// unsubscribeAll withdraws every marketing consent of subject and suppresses the
// address of hash for each marketing purpose. The suppression first: if the
// withdrawal then failed, the address would still be kept out of every audience and
// import.
func (s *Service) unsubscribeAll(ctx context.Context, subject, hash string, src consent.Source, evidence map[string]string) error {
	decisions := map[string]consent.Decision{}
	for _, p := range s.consent.Register().Purposes {
		if p.Marketing {
			decisions[p.Key] = consent.Withdrawn
		}
	}
	if err := s.db.InTx(ctx, func(tx *store.Tx) error {
		for p := range decisions {
			if err := s.suppressAddress(ctx, tx, hash, p, "unsubscribed by mail"); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	return s.consent.Apply(ctx, subject, decisions, nil, src, evidence)
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

// confirmRule is how often one address may be mailed a confirmation link: once an
// hour, counted in the database's buckets, so across every node.
var confirmRule = ratelimit.Rule{Burst: 1, Every: time.Hour}

// askToConfirm mails addr a link that unsubscribes it from all marketing once opened,
// unless one went to it within the hour. The mail is the subject's: sealed under
// its key, and taken out of the outbox by its erasure.
func (s *Service) askToConfirm(ctx context.Context, subject, addr string) error {
	hash := s.AddressHash(addr)
	bucket := "unsubscribe-confirm:" + hash // a blind index, never the address
	ok, err := s.limits.Take(ctx, bucket, confirmRule)
	if err != nil {
		return err
	}
	if !ok {
		s.log.Info("newsletter: unsubscribe confirmation not mailed: one was mailed within the hour")
		return nil
	}
	tok := s.mailToken(subject, hash, s.now().Add(confirmTTL))
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		return s.outbox.Enqueue(ctx, tx, mail.Transactional{SubjectID: subject, To: addr, Template: mail.UnsubscribeConfirm,
			Data: map[string]string{"Link": s.baseURL + "/unsubscribe?t=" + tok}})
	})
	if err != nil {
		// Not queued: the sender tries again, and may be mailed then.
		return errors.Join(err, s.limits.Give(context.WithoutCancel(ctx), bucket, confirmRule))
	}
	return nil
}

// mailTokenPrefix marks a confirmation link's token apart from a campaign's (whose
// base32 has no dot).
const mailTokenPrefix = "m."

var b64 = base64.RawURLEncoding

// mailToken is the token of a confirmation link: its expiry day, the address's hash,
// the subject and a MAC, with no address in it.
func (s *Service) mailToken(subject, hash string, expires time.Time) string {
	rawHash, _ := hex.DecodeString(hash) // a blind index: hex of 32 bytes
	buf := binary.BigEndian.AppendUint32(nil, uint32(expires.Unix()/86400))
	buf = append(buf, rawHash...)
	buf = append(buf, subject...)
	buf = append(buf, s.mailTokenMAC(buf)...)
	return mailTokenPrefix + b64.EncodeToString(buf)
}

func (s *Service) mailTokenMAC(payload []byte) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("unsubscribe by mail:"))
	m.Write(payload)
	return m.Sum(nil)[:16]
}

// parseMailToken checks a confirmation link's token and returns its subject and
// address hash.
func (s *Service) parseMailToken(tok string) (subject, hash string, err error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(tok), mailTokenPrefix)
	if !ok {
		return "", "", errBadToken
	}
	raw, err := b64.DecodeString(rest)
	if err != nil || len(raw) < 4+32+1+16 || len(raw) > 4+32+128+16 {
		return "", "", errBadToken
	}
	payload, mac := raw[:len(raw)-16], raw[len(raw)-16:]
	if subtle.ConstantTimeCompare(s.mailTokenMAC(payload), mac) != 1 {
		return "", "", errBadToken
	}
	if int64(binary.BigEndian.Uint32(payload[:4]))*86400 < s.now().Unix() {
		return "", "", errBadToken
	}
	return string(payload[36:]), hex.EncodeToString(payload[4:36]), nil
}

// allMarketing names what a confirmation link opts out of.
const allMarketing = "all marketing mail"

// unsubscribeByLink honours an opened confirmation link: the same as an
// authenticated mail, with the opening as the proof.
func (s *Service) unsubscribeByLink(ctx context.Context, tok string, src consent.Source, evidence map[string]string) (Unsubscribed, error) {
	subject, hash, err := s.checkMailToken(ctx, tok)
	if err != nil {
		return Unsubscribed{}, err
	}
	ev := map[string]string{"requested": "by mail to the unsubscribe address", "check": checkLink}
	for k, v := range evidence {
		ev[k] = v
	}
	if err := s.unsubscribeAll(ctx, subject, hash, src, ev); err != nil {
		return Unsubscribed{}, err
	}
	return Unsubscribed{PurposeName: allMarketing}, nil
}

// checkMailToken checks a confirmation link's token and that its subject was not
// erased since the link was mailed (nothing to record a decision for).
func (s *Service) checkMailToken(ctx context.Context, tok string) (subject, hash string, err error) {
	subject, hash, err = s.parseMailToken(tok)
	if err != nil {
		return "", "", err
	}
	ok, err := s.subjectKnown(ctx, subject)
	if err != nil {
		return "", "", err
	}
	if !ok {
		return "", "", errBadToken
	}
	return subject, hash, nil
}

// mailTokenPurpose names what a confirmation link opts out of, changing nothing.
func (s *Service) mailTokenPurpose(ctx context.Context, tok string) (string, error) {
	if _, _, err := s.checkMailToken(ctx, tok); err != nil {
		return "", err
	}
	return allMarketing, nil
}

// subjectKnown reports whether subject is still a member or a subscriber.
func (s *Service) subjectKnown(ctx context.Context, subject string) (bool, error) {
	_, err := s.members.Lookup(ctx, subject) // by id
	if err == nil {
		return true, nil
	}
	if apperr.KindOf(err) != apperr.NotFound {
		return false, err
	}
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM subscribers WHERE subject_id = $1`, subject).Scan(&n); err != nil {
		return false, fmt.Errorf("newsletter: unsubscribe: %w", err)
	}
	return n > 0, nil
}
