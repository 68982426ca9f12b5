package mail

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
	gosmtp "github.com/wneessen/go-mail/smtp"
)

func build(from string, m Message) (*gomail.Msg, error) {
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if err := msg.From(from); err != nil {
		return nil, fmt.Errorf("mail: from: %w", err)
	}
	if err := msg.To(m.To); err != nil {
		return nil, fmt.Errorf("mail: to: %w", err)
	}
	msg.Subject(m.Subject)
	msg.SetDate()
	msg.SetMessageID()
	msg.SetGenHeader("Auto-Submitted", "auto-generated")
	for k, v := range m.Headers {
		msg.SetGenHeaderPreformatted(gomail.Header(k), v)
	}
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	return msg, nil
}

// FileSender writes each message as an .eml file into a folder: the embedded default,
// so that a person or a test can read what would have been sent.
type FileSender struct {
	Dir  string
	From string
}

// Send writes the message atomically: a temporary file, synced, then renamed.
func (f FileSender) Send(_ context.Context, m Message) error {
	msg, err := build(f.From, m)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(f.Dir, 0o700); err != nil {
		return fmt.Errorf("mail: outbox folder: %w", err)
	}
	tmp, err := os.CreateTemp(f.Dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("mail: outbox file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := msg.WriteTo(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("mail: write: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("mail: write: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("mail: write: %w", err)
	}
	name := fmt.Sprintf("%s-%s.eml", time.Now().UTC().Format("20060102T150405.000000000"), m.ID)
	if err := os.Rename(tmp.Name(), filepath.Join(f.Dir, name)); err != nil {
		return fmt.Errorf("mail: write: %w", err)
	}
	return nil
}

// SendAll writes every message.
func (f FileSender) SendAll(ctx context.Context, msgs []Message) error {
	for _, m := range msgs {
		if err := f.Send(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// Taken says which of the given messages are in the folder: a message's file is
// renamed into place whole, so one that is not there was not written.
func (f FileSender) Taken(ids []string) (map[string]bool, error) {
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	entries, err := os.ReadDir(f.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mail: outbox folder: %w", err)
	}
	taken := map[string]bool{}
	for _, e := range entries {
		// TIME-ID.eml: the time holds no '-'.
		name, ok := strings.CutSuffix(e.Name(), ".eml")
		if _, id, found := strings.Cut(name, "-"); ok && found && want[id] {
			taken[id] = true
		}
	}
	return taken, nil
}

// Confirmer is a sender that can tell which of the messages it was given it took (the
// .eml folder): what a crash left unknown can be settled exactly. An SMTP server
// cannot be asked.
type Confirmer interface {
	Taken(ids []string) (map[string]bool, error)
}

// ConfirmerOf finds the Confirmer behind s and the senders wrapping it (Unwrap), if
// there is one.
func ConfirmerOf(s any) (Confirmer, bool) {
	for s != nil {
		if c, ok := s.(Confirmer); ok {
			return c, true
		}
		u, ok := s.(interface{ Unwrap() BulkSender })
		if !ok {
			return nil, false
		}
		s = u.Unwrap()
	}
	return nil, false
}

// Recall removes the files of the given messages.
func (f FileSender) Recall(ids []string) error {
	for _, id := range ids {
		files, err := filepath.Glob(filepath.Join(f.Dir, "*-"+id+".eml"))
		if err != nil {
			return err
		}
		for _, p := range files {
			if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
				return err
			}
		}
	}
	return nil
}

// SMTPSender delivers through an SMTP server.
type SMTPSender struct {
	host    string
	opts    []gomail.Option
	from    string
	timeout time.Duration // bounds each exchange with the server (a dial, a message)
}

// SMTPOption changes how an SMTPSender talks to its server.
type SMTPOption func(*SMTPSender)

// WithSMTPTimeout bounds each exchange with the server (default 30 seconds).
func WithSMTPTimeout(d time.Duration) SMTPOption { return func(s *SMTPSender) { s.timeout = d } }

// NewSMTPSender configures a client for addr (host:port). tlsMode is none, starttls or
// tls. The password is never logged.
func NewSMTPSender(addr, user, password, tlsMode, from string, options ...SMTPOption) (*SMTPSender, error) {
	s := &SMTPSender{from: from, timeout: defaultSMTPTimeout}
	for _, o := range options {
		o(s)
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("mail: smtp address: %w", err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("mail: smtp port: %w", err)
	}
	opts := []gomail.Option{gomail.WithPort(port), gomail.WithTimeout(s.timeout)}
	switch tlsMode {
	case "none":
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	case "tls":
		opts = append(opts, gomail.WithSSL())
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	}
	if user != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover), gomail.WithUsername(user), gomail.WithPassword(password))
	}
	if _, err := gomail.NewClient(host, opts...); err != nil {
		return nil, fmt.Errorf("mail: smtp client: %w", err)
	}
	s.host, s.opts = host, opts
	return s, nil
}

// Send delivers one message, over a connection of its own.
func (s *SMTPSender) Send(ctx context.Context, m Message) error {
	return s.SendAll(ctx, []Message{m})
}

// SendAll delivers every message over one connection; see smtpSession.SendAll.
func (s *SMTPSender) SendAll(ctx context.Context, msgs []Message) error {
	sess := s.Open()
	defer sess.Close()
	return sess.SendAll(ctx, msgs)
}

// defaultSMTPTimeout bounds each exchange with the SMTP server (a dial, a message).
const defaultSMTPTimeout = 30 * time.Second

// perCall is how many messages go between two renewals of the connection's deadline.
const perCall = 10

// perConnection is how many messages a session sends over one connection before it
// opens another: mail servers commonly cap messages per connection.
const perConnection = 1000

// Session sends batch after batch over one connection (a campaign), opening another
// when the server's usual cap of messages per connection nears.
type Session interface {
	SendAll(ctx context.Context, msgs []Message) error
	Close() error
}

// SessionSender is a sender that can hold a connection across batches.
type SessionSender interface {
	Open() Session
}

// Open starts a session; it connects with its first batch.
func (s *SMTPSender) Open() Session { return &smtpSession{s: s} }

type smtpSession struct {
	s      *SMTPSender
	client *gomail.Client
	conn   *gosmtp.Client
	sent   int
}

// SendAll sends the messages over the session's connection, opening one when there
// is none, the current one has carried perConnection messages, or it no longer answers
// (a NOOP before each batch: the server may have closed it while the batch was made
// ready). Every few messages get the full timeout; a message the server refuses does not
// stop the others (as over a connection of its own), and the batch then fails as a
// whole.
func (x *smtpSession) SendAll(ctx context.Context, msgs []Message) error {
	built := make([]*gomail.Msg, 0, len(msgs))
	for _, m := range msgs {
		msg, err := build(x.s.from, m)
		if err != nil {
			return err
		}
		built = append(built, msg)
	}
	if x.conn != nil && (x.conn.UpdateDeadline(x.s.timeout) != nil || x.conn.Noop() != nil) {
		x.drop()
	}
	pe := &PartialError{Failed: map[int]bool{}, Unsure: map[int]bool{}}
	var errs []error
	failFrom := func(from int, err error) { // nothing from here on was handed over
		for i := from; i < len(built); i++ {
			pe.Failed[i] = true
		}
		errs = append(errs, err)
	}
	for off := 0; off < len(built); {
		if x.conn != nil && x.sent >= perConnection {
			_ = x.Close() // the server has accepted what was sent: a failed QUIT loses nothing
		}
		if x.conn == nil {
			// No NOOP before each message: the deadline is renewed without a round trip.
			c, err := gomail.NewClient(x.s.host, append(x.s.opts, gomail.WithoutNoop())...)
			if err != nil {
				failFrom(off, err)
				break
			}
			conn, err := c.DialToSMTPClientWithContext(ctx)
			if err != nil {
				failFrom(off, err)
				break
			}
			x.client, x.conn, x.sent = c, conn, 0
		}
		// A few messages a call: the deadline is renewed at each call, so a slow
		// server still gets the full timeout for every few messages.
		n := min(len(built)-off, perCall, perConnection-x.sent)
		chunk := built[off : off+n]
		if err := x.client.SendWithSMTPClient(x.conn, chunk...); err != nil {
			errs = append(errs, err)
			known := false
			for i, m := range chunk {
				if m.IsDelivered() || !m.HasSendError() {
					known = known || m.IsDelivered()
					continue // taken (a failed RSET after it changes nothing)
				}
				known = true
				switch outcome(m.SendError()) {
				case sendTemporary:
					pe.Failed[off+i] = true
				case sendPermanent:
					pe.Failed[off+i] = false
				default:
					pe.Unsure[off+i] = true
				}
			}
			if !known { // the connection failed before any message: none of the chunk was handed over
				for i := range chunk {
					pe.Failed[off+i] = true
				}
			}
		}
		x.sent += n
		off += n
	}
	if len(errs) > 0 {
		_ = x.Close() // a fresh connection for the retry; the failures are reported below
		pe.err = fmt.Errorf("mail: smtp: %d of %d message(s) not sent, %d unconfirmed: %s", len(pe.Failed), len(msgs), len(pe.Unsure),
			redactAddresses(errors.Join(errs...).Error()))
		return pe
	}
	return nil
}

// The outcomes of a message the server did not take as sent.
const (
	sendTemporary = iota // not taken: worth trying again
	sendPermanent        // refused for good
	sendUnsure           // handed over whole, but no answer came: it may have been taken
)

// outcome reads a message's failure. The server's reply decides when there is one (4xx
// temporary, 5xx permanent). Without one the connection failed: before the message's
// end was sent (the envelope, the DATA command, the content) the server cannot have
// taken it; waiting for its answer after the end, it may have.
func outcome(err error) int {
	var se *gomail.SendError
	if !errors.As(err, &se) {
		return sendUnsure
	}
	switch code := se.ErrorCode(); {
	case code >= 400 && code < 500:
		return sendTemporary
	case code >= 500 && code < 600:
		return sendPermanent
	}
	switch se.Reason {
	case gomail.ErrSMTPDataClose:
		return sendUnsure
	case gomail.ErrNoUnencoded, gomail.ErrGetSender, gomail.ErrGetRcpts:
		return sendPermanent // the message itself cannot be sent
	}
	return sendTemporary
}

// PartialError says which messages of a batch (by index) were not sent, the others
// having been accepted by the server, and for each whether the failure was temporary
// (worth trying again: the server was busy, the connection dropped) rather than
// permanent (a mailbox that does not exist).
//
// Unsure holds the messages handed over whole whose answer never came (the connection
// failed while waiting for it): the server may or may not have taken them, so sending
// them again could deliver them twice.
type PartialError struct {
	Failed map[int]bool // index -> temporary
	Unsure map[int]bool // index -> true
	err    error
}

func (e *PartialError) Error() string { return e.err.Error() }

// drop closes a connection that no longer answers, without a QUIT.
func (x *smtpSession) drop() {
	_ = x.conn.Close()
	x.client, x.conn = nil, nil
}

// Close ends the connection, if one is open.
func (x *smtpSession) Close() error {
	if x.conn == nil {
		return nil
	}
	err := x.client.CloseWithSMTPClient(x.conn)
	if err != nil { // QUIT failed: the connection is still open
		_ = x.conn.Close()
	}
	x.client, x.conn = nil, nil
	return err
}

// redactAddresses keeps addresses out of an error that will be stored and logged.
func redactAddresses(s string) string {
	words := strings.Fields(s)
	for i, w := range words {
		if strings.Contains(w, "@") {
			words[i] = "<address>"
		}
	}
	return strings.Join(words, " ")
}
