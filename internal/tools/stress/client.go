package stress

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/http"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
)

// Client calls the API of one server.
type Client struct {
	URL  string
	HTTP *http.Client
}

// Answer is an API answer.
type Answer struct {
	Status int
	Body   []byte
}

// JSON decodes the body into a map (nil when it is not an object).
func (a Answer) JSON() map[string]any {
	var m map[string]any
	_ = json.Unmarshal(a.Body, &m)
	return m
}

// Str is a string field of the JSON body.
func (a Answer) Str(k string) string { s, _ := a.JSON()[k].(string); return s }

// Do sends a request; body is JSON-encoded unless it is a []byte or an io.Reader (sent as
// is, with contentType). A transport error (the server died) is returned as such.
func (c *Client) Do(ctx context.Context, method, path string, body any, token string, header ...string) (Answer, error) {
	var rd io.Reader
	ct := "application/json"
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case io.Reader:
		rd = b
	default:
		js, err := json.Marshal(b)
		if err != nil {
			return Answer{}, err
		}
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.URL+path, rd)
	if err != nil {
		return Answer{}, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", ct)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return Answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return Answer{}, err
	}
	return Answer{Status: resp.StatusCode, Body: b}, nil
}

// Mail is one .eml of the file outbox.
type Mail struct {
	File, To, Subject, Body string
	ListUnsubscribe         string // the header
}

// Outbox reads the .eml files the file sender writes in DATA/outbox, each once.
type Outbox struct {
	Dir  string
	mu   sync.Mutex
	seen map[string]bool
	all  []Mail
}

// Scan reads the files not read before and returns every mail read so far.
func (o *Outbox) Scan() []Mail {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.seen == nil {
		o.seen = map[string]bool{}
	}
	files, _ := filepath.Glob(filepath.Join(o.Dir, "*.eml"))
	sort.Strings(files)
	for _, f := range files {
		if o.seen[f] {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			continue // recalled by an erasure meanwhile
		}
		m, err := mail.ReadMessage(bytes.NewReader(b))
		if err != nil {
			continue
		}
		o.seen[f] = true
		to := m.Header.Get("To")
		if a, err := mail.ParseAddress(to); err == nil {
			to = a.Address
		}
		subj, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
		if err != nil {
			subj = m.Header.Get("Subject")
		}
		body, _ := io.ReadAll(m.Body)
		if dec, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body))); err == nil {
			body = dec
		}
		o.all = append(o.all, Mail{File: f, To: strings.ToLower(to), Subject: subj, Body: string(body), ListUnsubscribe: m.Header.Get("List-Unsubscribe")})
	}
	return o.all
}

var linkRE = regexp.MustCompile(`https?://[^\s"<>]+\?token=([A-Za-z0-9_-]+)`)

// WaitLink waits for a mail to addr with a link to path and returns the link's token.
func (o *Outbox) WaitLink(ctx context.Context, addr, path string) (string, error) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range o.Scan() {
			if m.To != strings.ToLower(addr) {
				continue
			}
			for _, s := range linkRE.FindAllStringSubmatch(m.Body, -1) {
				if strings.Contains(s[0], path) {
					return s[1], nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return "", fmt.Errorf("stress: no mail to %s with a %s link", addr, path)
}

// Member registers an adult, confirms the address from the outbox and logs in.
func Member(ctx context.Context, c *Client, out *Outbox, email, password string) (id, token string, err error) {
	r, err := c.Do(ctx, "POST", "/api/v1/accounts", map[string]string{"email": email, "password": password, "name": "Load Member",
		"birthdate": "1985-03-02", "country": "DE"}, "")
	if err != nil || r.Status != 201 {
		return "", "", fmt.Errorf("stress: register %s: %d %s %v", email, r.Status, r.Body, err)
	}
	id = r.Str("id")
	tok, err := out.WaitLink(ctx, email, "/verify?token=")
	if err != nil {
		return "", "", err
	}
	if v, err := c.Do(ctx, "POST", "/api/v1/verifications", map[string]string{"token": tok}, ""); err != nil || v.Status != 200 {
		return "", "", fmt.Errorf("stress: verify %s: %d %s %v", email, v.Status, v.Body, err)
	}
	token, err = Login(ctx, c, email, password)
	return id, token, err
}

// Login opens a session.
func Login(ctx context.Context, c *Client, email, password string) (string, error) {
	l, err := c.Do(ctx, "POST", "/api/v1/sessions", map[string]string{"email": email, "password": password}, "")
	if err != nil || l.Status != 201 {
		return "", fmt.Errorf("stress: login %s: %d %s %v", email, l.Status, l.Body, err)
	}
	return l.Str("token"), nil
}
