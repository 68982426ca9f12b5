package inbound

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/mail"
	"strings"

	"github.com/emersion/go-smtp"
)

// Replies the session gives. Their texts never echo what the client sent.
var (
	errNoSuchUser = &smtp.SMTPError{
		Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user here",
	}
	errTooManyRecipients = &smtp.SMTPError{
		Code: 452, EnhancedCode: smtp.EnhancedCode{4, 5, 3}, Message: "too many recipients",
	}
	errRateLimited = &smtp.SMTPError{
		Code: 450, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "too many messages from your address, try again later",
	}
	errTryLater = &smtp.SMTPError{
		Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "temporary failure, try again later",
	}
	errMalformed = &smtp.SMTPError{
		Code: 550, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "malformed message header",
	}
	errLineTooLong = &smtp.SMTPError{
		Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "a line of the message is too long",
	}
	errShuttingDown = &smtp.SMTPError{
		Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "service shutting down, try again later",
	}
)

// session is one SMTP connection's state. go-smtp calls its methods from one
// goroutine at a time.
type session struct {
	s        *Server
	conn     *smtp.Conn
	remoteIP string
	rateKey  string
	limited  int // MAIL commands refused by the rate limit

	// One mail transaction; cleared by Reset.
	sender    string
	nullFrom  bool
	attempts  int // RCPT commands, accepted or not
	haveRcpt  bool
	token     string
	rcptCount int
}

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	ip, key := clientKey(c.Conn().RemoteAddr())
	return &session{s: s, conn: c, remoteIP: ip, rateKey: key}, nil
}

func (ss *session) Reset() {
	ss.sender, ss.nullFrom = "", false
	ss.attempts, ss.haveRcpt, ss.token, ss.rcptCount = 0, false, "", 0
}

func (ss *session) Logout() error { return nil }

// maxLimited is how many MAIL commands over the rate a connection may send
// before it is cut, so that a client ignoring 450 costs neither work nor logs.
const maxLimited = 3

// Mail spends the client's rate: a refused transaction costs as much as an
// accepted one, so that probing recipients is limited too.
func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	ok, err := ss.s.allow(ss.rateKey)
	if err != nil {
		ss.s.log.Warn("inbound mail deferred: the rate limit could not be read", "err", err)
		if ss.limited++; ss.limited >= maxLimited {
			ss.conn.Close()
		}
		return errTryLater
	}
	if !ok {
		ss.limited++
		if ss.limited == 1 {
			// An address is personal data: it is logged only when the operator asks
			// for debug logs.
			ss.s.log.Info("inbound mail refused: rate limit")
			ss.s.log.Debug("inbound mail refused: rate limit", "remote_ip", ss.remoteIP)
		}
		if ss.limited >= maxLimited {
			ss.conn.Close()
		}
		return errRateLimited
	}
	ss.sender = strings.ToLower(from)
	ss.nullFrom = from == ""
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.attempts++
	if ss.attempts > ss.s.cfg.MaxRecipients {
		return errTooManyRecipients
	}
	token, ok := ss.s.match(to)
	if !ok {
		ss.s.log.Debug("inbound recipient refused", "rcpt_domain", domainOf(to), "remote_ip", ss.remoteIP)
		return errNoSuchUser
	}
	ss.rcptCount++
	if !ss.haveRcpt {
		ss.haveRcpt, ss.token = true, token
	}
	return nil
}

// Data reads the message and, unless it is a bounce or automatic, hands one
// Request to the Handler before the client is told the message was accepted.
// A plain request (no token) is first checked for an aligned DKIM or SPF pass
// (Request.Authenticated); the answer to the client is the same either way.
func (ss *session) Data(r io.Reader) error {
	log := ss.s.log.With("sender_domain", domainOf(ss.sender)) // no remote address: see Mail
	ss.s.log.Debug("inbound message", "remote_ip", ss.remoteIP, "sender_domain", domainOf(ss.sender))

	// The whole message, within MaxMessageBytes: a DKIM signature covers the body.
	raw, err := io.ReadAll(r)
	if err != nil {
		if errors.Is(err, smtp.ErrDataTooLarge) {
			log.Info("inbound message refused: too large")
			return smtp.ErrDataTooLarge
		}
		if errors.Is(err, smtp.ErrTooLongLine) {
			// Sending it again will not shorten the line: a permanent refusal.
			log.Info("inbound message refused: line too long")
			return errLineTooLong
		}
		return errTryLater // the client went away or aborted
	}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		log.Info("inbound message refused: malformed header")
		return errMalformed
	}

	if ss.nullFrom {
		log.Info("inbound message dropped: null sender")
		return nil
	}
	if autoSubmitted(msg.Header) {
		log.Info("inbound message dropped: auto-submitted")
		return nil
	}

	req := Request{
		Sender:    ss.sender,
		From:      fromAddress(msg.Header),
		Token:     ss.token,
		Recipient: ss.s.recipient(ss.token),
		RemoteIP:  ss.remoteIP,
	}
	var prepare func(ctx context.Context, r *Request)
	auth := ""
	if req.Token == "" && req.From != "" {
		ip := net.ParseIP(ss.remoteIP)
		helo := ss.conn.Hostname()
		prepare = func(ctx context.Context, r *Request) {
			auth = authenticate(ctx, ss.s.cfg.Resolver, raw, r.From, r.Sender, helo, ip)
			r.Authenticated = auth
		}
	}
	if err := ss.s.call(req, prepare); err != nil {
		if errors.Is(err, errShuttingDown) {
			return errShuttingDown
		}
		log.Error("inbound unsubscribe handler failed", "err", err)
		return errTryLater
	}
	log.Info("inbound unsubscribe request accepted",
		"from_domain", domainOf(req.From), "has_token", req.Token != "", "authenticated", auth, "recipients", ss.rcptCount)
	return nil
}

// autoSubmitted reports whether any Auto-Submitted field (RFC 3834) says
// other than "no".
func autoSubmitted(h mail.Header) bool {
	for _, v := range h["Auto-Submitted"] {
		v, _, _ = strings.Cut(v, ";")
		v, _, _ = strings.Cut(v, "(")
		v = strings.ToLower(strings.TrimSpace(v))
		if v != "" && v != "no" {
			return true
		}
	}
	return false
}

// fromAddress is the first address of the From: header; "" if there is none or
// more than one From: header (RFC 5322 allows one; with two, a signature could
// cover one and Steward read the other).
func fromAddress(h mail.Header) string {
	if len(h["From"]) != 1 {
		return ""
	}
	list, err := h.AddressList("From")
	if err != nil || len(list) == 0 {
		return ""
	}
	return strings.ToLower(list[0].Address)
}
