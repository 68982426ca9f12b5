// Package apptest boots the whole of Steward for a test: a fresh database on the
// engine asked for, the background jobs, a real HTTP server on a loopback port, and
// helpers to call the API and read the mail it sends.
package apptest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"mime/quotedprintable"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"steward/internal/app"
	"steward/internal/config"
	"steward/internal/inbound/fakedns"
	"steward/internal/store/storetest"
)

// Each runs fn against a fresh Steward on SQLite, and on PostgreSQL when the test
// database is configured, in parallel subtests.
func Each(t *testing.T, fn func(t *testing.T, h *Harness)) {
	t.Helper()
	EachDatabase(t, func(t *testing.T, dbURL string) { fn(t, Start(t, dbURL)) })
}

// EachDatabase runs fn in parallel subtests with the database URL of each engine ("" for
// SQLite), for a test that starts Steward with settings of its own.
func EachDatabase(t *testing.T, fn func(t *testing.T, dbURL string)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		fn(t, "")
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		u := storetest.PostgresURL(t)
		if u == "" {
			t.Skip("STEWARD_TEST_POSTGRES_URL not set")
		}
		fn(t, u)
	})
}

// Harness is a running Steward.
type Harness struct {
	T      testing.TB
	App    *app.App
	URL    string
	Data   string
	Client *http.Client
	Clock  *Clock // Steward's clock: move it on to age what Steward stored
	// DNS answers the inbound listener's SPF and DKIM lookups: a test publishes
	// records in it; nothing asks the network.
	DNS  *fakedns.Resolver
	stop func()
	once sync.Once
}

// Clock is the clock a harness gives Steward: the real time, moved on by Advance. A test
// ages what Steward stored (a registration left unconfirmed, a file uploaded long ago)
// by moving the clock, not by rewriting timestamps in the database.
type Clock struct {
	mu     sync.Mutex
	offset time.Duration
}

// Now is the real time plus every Advance so far.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// Start boots Steward on dbURL ("" for SQLite in a temporary folder) with extra flags.
// Its log is discarded (STEWARD_TEST_LOG=1: written to stderr).
func Start(t testing.TB, dbURL string, flags ...string) *Harness {
	t.Helper()
	return start(t, dbURL, nil, flags)
}

// StartLogged is Start with every line Steward logs, at DEBUG, written to w (which
// must take writes from several goroutines).
func StartLogged(t testing.TB, dbURL string, w io.Writer, flags ...string) *Harness {
	t.Helper()
	return start(t, dbURL, w, flags)
}

func start(t testing.TB, dbURL string, logTo io.Writer, flags []string) *Harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	data := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	args := []string{"--data", data, "--addr", ln.Addr().String(), "--base-url", base, "--argon2-memory", "1024", "--rate-limits=false"}
	if dbURL != "" {
		args = append(args, "--database", dbURL)
		if !slices.Contains(flags, "--master-key-file") {
			// Nodes of one deployment share its key: every harness on this database
			// gets the same key file, as an operator copies it to every node.
			args = append(args, "--master-key-file", KeyFile(t, dbURL))
		}
		if !slices.Contains(flags, "--ledger-key-file") {
			// So is the key of blind indexes (and of the erasure ledger).
			args = append(args, "--ledger-key-file", strings.TrimSuffix(KeyFile(t, dbURL), filepath.Ext(KeyFile(t, dbURL)))+".ledger")
		}
	}
	cfg, _, err := config.Load(append(args, flags...), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("STEWARD_TEST_LOG") == "1" {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if logTo != nil {
		log = slog.New(slog.NewTextHandler(logTo, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	clock := &Clock{}
	dns := fakedns.New()
	a, err := app.New(ctx, cfg, log, app.WithPoll(20*time.Millisecond), app.WithKeyGrace(-1), app.WithClock(clock.Now), app.WithResolver(dns))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = a.Serve(ctx, ln); close(done) }()
	h := &Harness{T: t, App: a, URL: base, Data: data, Client: &http.Client{Timeout: 30 * time.Second}, Clock: clock, DNS: dns}
	h.stop = func() {
		cancel()
		<-done
		a.Close()
	}
	t.Cleanup(h.Close)
	return h
}

// KeyFile is the key file that every harness started on dbURL shares.
func KeyFile(t testing.TB, dbURL string) string {
	if path, ok := strings.CutPrefix(dbURL, "sqlite:"); ok {
		return filepath.Join(filepath.Dir(path), "master.key")
	}
	sum := sha256.Sum256([]byte(dbURL))
	dir := filepath.Join(os.TempDir(), "steward-test-keys")
	path := filepath.Join(dir, hex.EncodeToString(sum[:8])+".key")
	t.Cleanup(func() { _ = os.Remove(path) })
	return path
}

// Close stops Steward (it is also stopped when the test ends).
func (h *Harness) Close() { h.once.Do(h.stop) }

// Response is an answer of the API.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a map.
func (r Response) JSON() map[string]any {
	var m map[string]any
	_ = json.Unmarshal(r.Body, &m)
	return m
}

// ErrorField returns the field named in an API error, and its code.
func (r Response) ErrorField() (field, code string) {
	var b struct {
		Error struct{ Code, Field string }
	}
	_ = json.Unmarshal(r.Body, &b)
	return b.Error.Field, b.Error.Code
}

// Do sends a request with an optional JSON body (a string is sent as is) and a
// bearer token.
func (h *Harness) Do(method, path string, body any, token string) Response {
	h.T.Helper()
	return Call(h.T, h.Client, h.URL, method, path, body, token, nil)
}

// Call sends a request to the Steward at base as Do does (a body that is not a string
// or bytes is sent as JSON; a token as a bearer), with the extra headers given (a
// client address behind the trusted proxy, a browser), and returns the answer read
// whole. Tests that talk to a node other than a harness's use it too.
func Call(t testing.TB, client *http.Client, base, method, path string, body any, token string, header map[string]string) Response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		js, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s%s: %v", method, base, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// Mail is a message found in the outbox folder.
type Mail struct {
	File string
	Raw  string // headers and decoded body
}

// Mails returns every .eml in the outbox whose To is addr, oldest first.
func (h *Harness) Mails(addr string) []Mail {
	files, _ := filepath.Glob(filepath.Join(h.Data, "outbox", "*.eml"))
	sort.Strings(files)
	var out []Mail
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// Headers may be folded (RFC 5322): unfold them; only the body is
		// quoted-printable ("t=ab" in a header is not an escape).
		text := string(b)
		head, body, _ := strings.Cut(text, "\r\n\r\n")
		head = strings.NewReplacer("\r\n ", " ", "\r\n\t", " ").Replace(head)
		raw := head + "\r\n\r\n" + decodeQP(body)
		if strings.Contains(strings.ToLower(headerTo(raw)), strings.ToLower(addr)) {
			out = append(out, Mail{File: f, Raw: raw})
		}
	}
	return out
}

func headerTo(raw string) string {
	for _, line := range strings.Split(raw, "\n") {
		if strings.HasPrefix(line, "To:") {
			return line
		}
		if strings.TrimSpace(line) == "" {
			break
		}
	}
	return ""
}

func decodeQP(s string) string {
	b, err := io.ReadAll(quotedprintable.NewReader(strings.NewReader(s)))
	if err != nil {
		return s
	}
	return string(b)
}

// WaitMail waits until n mails to addr are in the outbox and returns them.
func (h *Harness) WaitMail(addr string, n int) []Mail {
	h.T.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := h.Mails(addr)
		if len(m) >= n {
			return m
		}
		if time.Now().After(deadline) {
			h.T.Fatalf("waited 10s for %d mail(s) to %s, have %d", n, addr, len(m))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var tokenRE = regexp.MustCompile(`https?://[^\s"<>]+\?token=([A-Za-z0-9_-]+)`)

// Link returns the first link with a token in the mail, and its token.
func (m Mail) Link() (link, token string) {
	sub := tokenRE.FindStringSubmatch(m.Raw)
	if sub == nil {
		return "", ""
	}
	return sub[0], sub[1]
}

// WaitLink waits for a mail to addr holding a link with the path and returns its token.
func (h *Harness) WaitLink(addr, path string) string {
	h.T.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range h.Mails(addr) {
			if link, tok := m.Link(); strings.Contains(link, path) {
				return tok
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.T.Fatalf("no mail to %s with a %s link", addr, path)
	return ""
}

// Register registers a member through the API and returns the response.
func (h *Harness) Register(fields map[string]any) Response {
	h.T.Helper()
	return h.Do("POST", "/api/v1/accounts", fields, "")
}

// Member registers an adult member, confirms the address from the mail and logs in;
// it returns the account id and a bearer token.
func (h *Harness) Member(email, password string, extra map[string]any) (id, token string) {
	h.T.Helper()
	body := map[string]any{"email": email, "password": password, "name": "Test Member", "birthdate": "1985-03-02", "country": "DE"}
	for k, v := range extra {
		body[k] = v
	}
	r := h.Register(body)
	if r.Status != http.StatusCreated {
		h.T.Fatalf("register %s: status %d: %s", email, r.Status, r.Body)
	}
	id = r.JSON()["id"].(string)
	tok := h.WaitLink(email, "/verify?token=")
	if v := h.Do("POST", "/api/v1/verifications", map[string]string{"token": tok}, ""); v.Status != http.StatusOK {
		h.T.Fatalf("verify %s: status %d: %s", email, v.Status, v.Body)
	}
	l := h.Do("POST", "/api/v1/sessions", map[string]string{"email": email, "password": password}, "")
	if l.Status != http.StatusCreated {
		h.T.Fatalf("login %s: status %d: %s", email, l.Status, l.Body)
	}
	return id, l.JSON()["token"].(string)
}

// WaitErasure waits until the erasure request is done.
func (h *Harness) WaitErasure(requestID string) {
	h.T.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := h.Do("GET", "/api/v1/erasures/"+requestID, nil, "")
		if r.Status == http.StatusOK && r.JSON()["state"] == "done" {
			return
		}
		if time.Now().After(deadline) {
			h.T.Fatalf("erasure %s not done after 15s: %d %s", requestID, r.Status, r.Body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
