// Package inbound owns Steward's inbound SMTP listener: the public, MX-style
// endpoint that turns a mail sent to the unsubscribe address
// (unsubscribe@Domain or unsubscribe+TOKEN@Domain) into one unsubscribe
// Request for a Handler (P-MAIL-4).
//
// It accepts mail for that one address and nothing else: it never relays, stores
// or forwards a message; it reads the headers, and the body only to check a DKIM
// signature (within the size limit). A mail to the plain address is checked for
// a DKIM signature or an SPF pass aligned with its From: domain (DMARC's relaxed
// alignment), and the Handler is told which passed (Request.Authenticated). Bounces and auto-replies are accepted and
// dropped so that no backscatter loop can start. Against mail bombs it limits
// message size, recipients, line length, messages per remote IP, connections
// (in total and per IP) and the length of a session.
package inbound

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// Request is one unsubscribe request that arrived by mail.
//
// The envelope sender and the From: header can be forged by anyone: only Token,
// or an Authenticated From: domain, ties a request to a recipient. A Handler
// acts on a plain request only when Authenticated is set, and otherwise asks
// the From: address to confirm.
type Request struct {
	// Sender is the envelope sender (MAIL FROM), lower-cased. It is never ""
	// in a Request: null-sender messages are dropped before the Handler.
	Sender string
	// From is the first address of the From: header, lower-cased; "" when the
	// header is missing, cannot be parsed or appears more than once.
	From string
	// Authenticated says which check tied From's domain to the message, as
	// DMARC's relaxed alignment does: "dkim:DOMAIN aligned" for a valid DKIM
	// signature of DOMAIN, "spf:DOMAIN aligned" for an SPF pass of the envelope
	// sender at DOMAIN, DOMAIN being in From's organizational domain. "" when
	// no check passed aligned, and for a request with a Token (not checked).
	Authenticated string
	// Token comes from a recipient unsubscribe+TOKEN@Domain, case preserved;
	// "" for the plain address. A token matches [A-Za-z0-9_.=-]{1,512}.
	Token string
	// Recipient is the first accepted recipient in canonical form:
	// LocalPart[+TOKEN]@Domain, with LocalPart and Domain lower-cased.
	Recipient string
	// RemoteIP is the IP address of the connecting client.
	RemoteIP string
}

// Handler records an unsubscribe. It is called once per accepted message,
// before the client is told the message was accepted, so it must be quick
// (it gets at most HandlerTimeout) and idempotent: a client whose connection
// drops after the call retries the same message.
//
// An error makes the server answer 451 (try again later) and the client
// retry, so return nil for a request that can never succeed (an unknown
// token or address) and an error only for a temporary failure.
type Handler func(ctx context.Context, r Request) error

// HandlerTimeout bounds one Handler call; its context is also cancelled when
// the Server is closed.
const HandlerTimeout = 30 * time.Second

// maxLineLength is the longest line accepted, commands and message alike: RFC
// 5322 allows 998 characters plus CRLF; doubled for clients that overstep, as
// go-smtp does by default. A longer line closes the connection.
const maxLineLength = 2000

// Defaults for the zero values of Config.
const (
	DefaultLocalPart          = "unsubscribe"
	DefaultMaxMessageBytes    = 64 << 10
	DefaultMaxRecipients      = 5
	DefaultRatePerMinute      = 30
	DefaultMaxConnections     = 50
	DefaultMaxConnectionsIP   = 10
	DefaultTimeout            = 30 * time.Second
	DefaultMaxSessionDuration = 5 * time.Minute
)

// Config configures a Server. Zero values take the documented defaults.
type Config struct {
	// Addr is the listen address for ListenAndServe, e.g. 127.0.0.1:2525.
	Addr string
	// Domain is the domain of the unsubscribe address, e.g. steward.localhost.
	// It is also the name the server greets with.
	Domain string
	// LocalPart defaults to "unsubscribe": the server accepts
	// unsubscribe@Domain and unsubscribe+TOKEN@Domain, case-insensitively.
	LocalPart string
	// MaxMessageBytes defaults to 64 KiB: a bigger message is refused (552)
	// and nothing is recorded.
	MaxMessageBytes int64
	// MaxRecipients defaults to 5: RCPT commands beyond it in one transaction,
	// accepted or not, are refused (452).
	MaxRecipients int
	// RatePerMinute defaults to 30: the number of mail transactions (MAIL
	// commands) accepted per remote IP per minute, as a token bucket with that
	// burst; beyond it MAIL is refused (450) and nothing is recorded. IPv6
	// clients are counted per /64.
	RatePerMinute int
	// MaxConnections defaults to 50 open connections; more get 421 and are
	// closed.
	MaxConnections int
	// MaxConnectionsPerIP defaults to 10 (or MaxConnections if smaller) open
	// connections per remote IP (per /64 for IPv6); more get 421.
	MaxConnectionsPerIP int
	// ReadTimeout and WriteTimeout default to 30 s. ReadTimeout bounds each
	// command and the whole of a message's DATA.
	ReadTimeout, WriteTimeout time.Duration
	// MaxSessionDuration defaults to 5 minutes: a connection is cut after it,
	// whatever the client is doing.
	MaxSessionDuration time.Duration
	// TLS, if set, enables STARTTLS. Plain-text mail is accepted either way.
	TLS *tls.Config
	// Log defaults to discarding. It never receives message contents or full
	// addresses: only domains, remote IPs and outcomes.
	Log *slog.Logger
	// Now is the clock for the rate limit; defaults to time.Now.
	Now func() time.Time
	// Resolver answers the SPF and DKIM checks' DNS queries; defaults to
	// net.DefaultResolver.
	Resolver Resolver
	// Limit, if set, spends one of the client's mail transactions and reports
	// whether it had one: a store every node shares, so that the rate holds for the
	// deployment (client is the IP, or the /64 for IPv6). By default each Server
	// keeps a bucket of RatePerMinute per client in memory.
	Limit func(ctx context.Context, client string) (bool, error)
}

// limitTimeout bounds a Config.Limit call.
const limitTimeout = 5 * time.Second

// ErrServerClosed is returned by Serve and ListenAndServe after Close.
var ErrServerClosed = errors.New("inbound: server closed")

// Server is an inbound SMTP listener for unsubscribe mail.
type Server struct {
	cfg       Config
	domain    string
	localPart string
	handler   Handler
	log       *slog.Logger
	now       func() time.Time

	smtp  *smtp.Server
	rate  *rateLimiter
	conns *connLimiter

	mu        sync.Mutex
	closed    bool
	closing   chan struct{} // closed by Close: cancels handler contexts
	listeners []net.Listener
	addr      net.Addr
	inflight  sync.WaitGroup // handler calls
}

// New validates cfg, fills in its defaults and returns a Server that is not
// yet listening.
func New(cfg Config, h Handler) (*Server, error) {
	if h == nil {
		return nil, errors.New("inbound: handler is nil")
	}
	domain, err := normalizeDomain(cfg.Domain)
	if err != nil {
		return nil, err
	}
	cfg.Domain = domain
	if cfg.LocalPart == "" {
		cfg.LocalPart = DefaultLocalPart
	}
	cfg.LocalPart = strings.ToLower(cfg.LocalPart)
	if !validLocalPart(cfg.LocalPart) {
		return nil, fmt.Errorf("inbound: LocalPart %q must be 1 to 64 of [a-z0-9._-], starting with a letter or digit", cfg.LocalPart)
	}

	for _, f := range []struct {
		name string
		v    int64
	}{
		{"MaxMessageBytes", cfg.MaxMessageBytes},
		{"MaxRecipients", int64(cfg.MaxRecipients)},
		{"RatePerMinute", int64(cfg.RatePerMinute)},
		{"MaxConnections", int64(cfg.MaxConnections)},
		{"MaxConnectionsPerIP", int64(cfg.MaxConnectionsPerIP)},
		{"ReadTimeout", int64(cfg.ReadTimeout)},
		{"WriteTimeout", int64(cfg.WriteTimeout)},
		{"MaxSessionDuration", int64(cfg.MaxSessionDuration)},
	} {
		if f.v < 0 {
			return nil, fmt.Errorf("inbound: %s must not be negative, got %d", f.name, f.v)
		}
	}
	if cfg.MaxMessageBytes == 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if cfg.MaxRecipients == 0 {
		cfg.MaxRecipients = DefaultMaxRecipients
	}
	if cfg.RatePerMinute == 0 {
		cfg.RatePerMinute = DefaultRatePerMinute
	}
	if cfg.MaxConnections == 0 {
		cfg.MaxConnections = DefaultMaxConnections
	}
	if cfg.MaxConnectionsPerIP == 0 {
		cfg.MaxConnectionsPerIP = min(DefaultMaxConnectionsIP, cfg.MaxConnections)
	}
	if cfg.MaxConnectionsPerIP > cfg.MaxConnections {
		return nil, fmt.Errorf("inbound: MaxConnectionsPerIP (%d) exceeds MaxConnections (%d)", cfg.MaxConnectionsPerIP, cfg.MaxConnections)
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = DefaultTimeout
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultTimeout
	}
	if cfg.MaxSessionDuration == 0 {
		cfg.MaxSessionDuration = DefaultMaxSessionDuration
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}

	s := &Server{
		cfg:       cfg,
		domain:    cfg.Domain,
		localPart: cfg.LocalPart,
		handler:   h,
		log:       cfg.Log.With("component", "inbound"),
		now:       cfg.Now,
		rate:      newRateLimiter(cfg.RatePerMinute),
		conns:     newConnLimiter(cfg.MaxConnections, cfg.MaxConnectionsPerIP),
		closing:   make(chan struct{}),
	}

	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = cfg.Domain
	srv.MaxMessageBytes = cfg.MaxMessageBytes
	srv.MaxRecipients = cfg.MaxRecipients
	srv.MaxLineLength = maxLineLength
	srv.ReadTimeout = cfg.ReadTimeout
	srv.WriteTimeout = cfg.WriteTimeout
	srv.TLSConfig = cfg.TLS
	// go-smtp reports connection errors here; they hold remote addresses and
	// error texts, never message contents (Debug stays nil for that reason).
	srv.ErrorLog = slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)
	s.smtp = srv
	return s, nil
}

// Serve accepts connections on ln until Close; it then returns nil. It
// returns ErrServerClosed at once, closing ln, if the Server is already closed.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	l := &limitListener{Listener: ln, s: s}
	s.listeners = append(s.listeners, l)
	if s.addr == nil {
		s.addr = ln.Addr()
	}
	s.mu.Unlock()

	s.log.Info("inbound smtp listening", "addr", ln.Addr().String(), "domain", s.domain)
	err := s.smtp.Serve(l)
	if err != nil && s.isClosed() && errors.Is(err, net.ErrClosed) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("inbound: serve: %w", err)
	}
	return nil
}

// ListenAndServe listens on Config.Addr and calls Serve.
func (s *Server) ListenAndServe() error {
	if s.cfg.Addr == "" {
		return errors.New("inbound: Config.Addr is empty")
	}
	if s.isClosed() {
		return ErrServerClosed
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("inbound: listen: %w", err)
	}
	return s.Serve(ln)
}

// Addr is the address of the first listener, or nil before Serve starts.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Close stops the listeners, cuts every connection (a message not yet
// acknowledged is retried by its sender), cancels running Handler calls and
// waits for them to return. Serve then returns nil. Calling Close again does
// nothing.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	listeners := s.listeners
	s.mu.Unlock()

	// smtp.Close marks itself done before closing listeners, so a Serve whose
	// listener it had not seen yet still returns cleanly when we close it below.
	err := s.smtp.Close()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	for _, l := range listeners {
		l.Close() // already closed by smtp.Close unless Serve had not reached it
	}
	s.inflight.Wait()
	if err != nil {
		return fmt.Errorf("inbound: close: %w", err)
	}
	return nil
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// call runs the handler unless the server is closing, with a context that
// Close cancels, turning a panic into an error. prepare, if not nil, completes
// the request first, with the same context (the checks' DNS lookups).
func (s *Server) call(r Request, prepare func(ctx context.Context, r *Request)) (err error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errShuttingDown
	}
	s.inflight.Add(1)
	s.mu.Unlock()
	defer s.inflight.Done()

	ctx, cancel := context.WithTimeout(context.Background(), HandlerTimeout)
	defer cancel()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-s.closing:
			cancel()
		case <-stop:
		}
	}()

	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panic: %v", p)
		}
	}()
	if prepare != nil {
		prepare(ctx, &r)
	}
	return s.handler(ctx, r)
}

// allow spends one mail transaction of the client's rate.
func (s *Server) allow(client string) (bool, error) {
	if s.cfg.Limit == nil {
		return s.rate.allow(client, s.now()), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), limitTimeout)
	defer cancel()
	return s.cfg.Limit(ctx, client)
}

// match reports whether addr is the unsubscribe address, and its token.
func (s *Server) match(addr string) (token string, ok bool) {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return "", false
	}
	local, domain := addr[:at], strings.TrimSuffix(addr[at+1:], ".")
	if !strings.EqualFold(domain, s.domain) {
		return "", false
	}
	base, tok, hasTok := strings.Cut(local, "+")
	if !strings.EqualFold(base, s.localPart) {
		return "", false
	}
	if !hasTok {
		return "", true
	}
	if !validToken(tok) {
		return "", false
	}
	return tok, true
}

func (s *Server) recipient(token string) string {
	if token == "" {
		return s.localPart + "@" + s.domain
	}
	return s.localPart + "+" + token + "@" + s.domain
}

func validToken(t string) bool {
	if len(t) < 1 || len(t) > 512 {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '_', c == '.', c == '=', c == '-':
		default:
			return false
		}
	}
	return true
}

func validLocalPart(p string) bool {
	if len(p) < 1 || len(p) > 64 {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '-'):
		default:
			return false
		}
	}
	return true
}

func normalizeDomain(d string) (string, error) {
	d = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
	if d == "" {
		return "", errors.New("inbound: Domain is required")
	}
	if len(d) > 253 {
		return "", fmt.Errorf("inbound: Domain %q is longer than 253 characters", d)
	}
	for label := range strings.SplitSeq(d, ".") {
		ok := len(label) >= 1 && len(label) <= 63 && label[0] != '-' && label[len(label)-1] != '-'
		for i := 0; ok && i < len(label); i++ {
			c := label[i]
			ok = 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-'
		}
		if !ok {
			return "", fmt.Errorf("inbound: Domain %q is not a host name", d)
		}
	}
	return d, nil
}

// domainOf returns the lower-cased domain of addr, for logs that must not
// hold full addresses.
func domainOf(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return ""
	}
	return strings.ToLower(addr[at+1:])
}
