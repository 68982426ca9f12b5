package app_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"steward/internal/app/apptest"
	"steward/internal/server"
)

// syncBuffer takes the log's writes from every goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The whole log of a full run, at DEBUG, holds none of the members' identifiers, their
// passwords, session or one-time tokens, nor the deployment's keys: a run registers,
// verifies, logs in (and fails to once), edits the profile, uploads a file, changes
// consent, exports, resets the password, subscribes a reader to the newsletter and
// confirms, and erases the member.
func TestLogsHoldNoSecrets(t *testing.T) {
	apptest.EachDatabase(t, func(t *testing.T, dbURL string) {
		logs := &syncBuffer{}
		h := apptest.StartLogged(t, dbURL, logs)
		secrets := map[string]string{} // needle -> what it is
		add := func(what string, vals ...string) {
			for _, v := range vals {
				if v = strings.TrimSpace(v); len(v) >= 6 {
					secrets[strings.ToLower(v)] = what
				}
			}
		}
		const (
			email    = "zebulon.quixotic@example.org"
			name     = "Zebulon Quixotic"
			phone    = "+49 30 5550199"
			home     = "17 Marigold Crescent, Wolfsburg"
			business = "Quillfeather Works, Dock 9"
			newName  = "Zebulon Quixotic-Farnsworth"
			newPhone = "+49 30 5550277"
			newPass  = "cobalt-lantern-97"
			reader   = "ottilie.vandersnoot@example.net"
			fileName = "zebulon-xray-notes.txt"
			fileBody = "Zebulon's private notes: blood type Q-negative"
		)
		add("email", email, "zebulon.quixotic", reader, "ottilie.vandersnoot")
		add("name", name, "Zebulon", "Quixotic", newName, "Farnsworth", "Ottilie", "Vandersnoot")
		add("phone", phone, strings.ReplaceAll(phone, " ", ""), "5550199", newPhone, "5550277")
		add("address", home, "Marigold", business, "Quillfeather")
		add("password", pw, newPass, "wrong-guess-123")
		add("file", fileName, "xray-notes", fileBody, "Q-negative")

		id, token := h.Member(email, pw, map[string]any{"name": name, "phone": phone, "home_address": home, "business_address": business})
		add("session token", token)
		// A wrong password, a second registration of the address, a reset for an
		// unknown one: the paths where an address is most often logged.
		if r := h.Do("POST", "/api/v1/sessions", map[string]string{"email": email, "password": "wrong-guess-123"}, ""); r.Status != http.StatusUnauthorized {
			t.Errorf("wrong password = %d %s", r.Status, r.Body)
		}
		h.Register(map[string]any{"email": email, "password": pw, "name": name, "birthdate": "1985-03-02", "country": "DE"})
		h.Do("POST", "/api/v1/password-resets", map[string]string{"email": "nobody." + email}, "")

		if r := h.Do("PATCH", "/api/v1/me", map[string]any{"name": newName, "phone": newPhone, "public": map[string]bool{"name": true}}, token); r.Status != http.StatusOK {
			t.Fatalf("PATCH /me = %d %s", r.Status, r.Body)
		}
		if r := h.Do("GET", "/api/v1/members/"+id, nil, ""); r.Status != http.StatusOK {
			t.Errorf("public profile = %d", r.Status)
		}
		if r := uploadFile(t, h, token, fileName, fileBody); r.Status != http.StatusCreated {
			t.Fatalf("upload = %d %s", r.Status, r.Body)
		}
		if r := h.Do("PUT", "/api/v1/me/consents", `{"choices":{"newsletter":true,"partner_sharing":true}}`, token); r.Status != http.StatusOK {
			t.Fatalf("consent = %d %s", r.Status, r.Body)
		}
		if r := h.Do("PUT", "/api/v1/me/consents", `{"choices":{"partner_sharing":false}}`, token); r.Status != http.StatusOK {
			t.Fatalf("consent = %d %s", r.Status, r.Body)
		}
		if r := h.Do("GET", "/api/v1/me/export", nil, token); r.Status != http.StatusOK {
			t.Fatalf("export = %d %s", r.Status, r.Body)
		}

		// A password reset, and a login with the new password.
		if r := h.Do("POST", "/api/v1/password-resets", map[string]string{"email": email}, ""); r.Status != http.StatusAccepted {
			t.Fatalf("reset = %d %s", r.Status, r.Body)
		}
		rtok := h.WaitLink(email, "reset")
		if r := h.Do("POST", "/api/v1/password-resets/confirm", map[string]string{"token": rtok, "password": newPass}, ""); r.Status != http.StatusNoContent {
			t.Fatalf("reset confirm = %d %s", r.Status, r.Body)
		}
		l := h.Do("POST", "/api/v1/sessions", map[string]string{"email": email, "password": newPass}, "")
		if l.Status != http.StatusCreated {
			t.Fatalf("login after reset = %d %s", l.Status, l.Body)
		}
		token2, _ := l.JSON()["token"].(string)
		add("session token", token2)

		// A reader subscribes and confirms.
		if r := h.Do("POST", "/api/v1/newsletter", map[string]string{"first_name": "Ottilie", "last_name": "Vandersnoot", "email": reader}, ""); r.Status != http.StatusAccepted {
			t.Fatalf("subscribe = %d %s", r.Status, r.Body)
		}
		mails := h.WaitMail(reader, 1)
		_, ntok := mails[len(mails)-1].Link()
		if r := h.Do("POST", "/api/v1/newsletter/confirm", map[string]string{"token": ntok}, ""); r.Status != http.StatusOK {
			t.Fatalf("newsletter confirm = %d %s", r.Status, r.Body)
		}

		// The pages: a wrong password and a right one at /login, the account page with
		// the session cookie, and a reset asked for by form.
		for _, pass := range []string{"wrong-guess-123", newPass} {
			resp, err := noRedirect.PostForm(h.URL+"/login", url.Values{"email": {email}, "password": {pass}})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			for _, c := range resp.Cookies() {
				add("session cookie", c.Value)
				if c.Name == server.CookieName && c.Value != "" && pass == newPass { // not the known-device cookie
					req, _ := http.NewRequest("GET", h.URL+"/account", nil)
					req.AddCookie(c)
					if r, err := noRedirect.Do(req); err != nil || r.StatusCode != http.StatusOK {
						t.Errorf("GET /account with the cookie: %v %v", err, r)
					} else {
						r.Body.Close()
					}
				}
			}
		}
		if resp, err := noRedirect.PostForm(h.URL+"/password/forgot", url.Values{"email": {email}}); err != nil {
			t.Fatal(err)
		} else {
			resp.Body.Close()
		}

		// Erasure, to the end.
		del := h.Do("DELETE", "/api/v1/me", map[string]string{"password": newPass}, token2)
		if del.Status != http.StatusAccepted {
			t.Fatalf("DELETE /me = %d %s", del.Status, del.Body)
		}
		h.WaitErasure(del.JSON()["request_id"].(string))

		// Every token any mail carried (verification, reset, newsletter confirmation,
		// unsubscribe links and addresses), read before the stop.
		for _, m := range outboxMails(t, h) {
			for _, sub := range mailTokenRE.FindAllStringSubmatch(m, -1) {
				add("one-time token from a mail", sub[1])
			}
		}
		cfg := h.App.Config()
		keyFiles := map[string]string{"master key": cfg.MasterKeyFile, "ledger key": cfg.LedgerKeyFile, "receipt key": cfg.ReceiptKeyFile}
		for what, path := range keyFiles {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			for _, n := range keyNeedles(b) {
				add(what+" ("+filepath.Base(path)+")", n)
			}
		}
		h.Close() // the log is complete: jobs and dispatcher stopped

		out := logs.String()
		if !strings.Contains(out, "level=DEBUG") || !strings.Contains(out, "erasure done") {
			t.Fatalf("the log was not captured at DEBUG:\n%.2000s", out)
		}
		lower := strings.ToLower(out)
		for needle, what := range secrets {
			if i := strings.Index(lower, needle); i >= 0 {
				start := strings.LastIndexByte(out[:i], '\n') + 1
				end := strings.IndexByte(out[i:], '\n')
				if end < 0 {
					end = len(out) - i
				}
				t.Errorf("the log holds a %s (%q):\n%s", what, needle, out[start:i+end])
			}
		}
		t.Logf("%d log lines checked for %d secrets", strings.Count(out, "\n"), len(secrets))
	})
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

var mailTokenRE = regexp.MustCompile(`(?:token=|unsubscribe\+)([A-Za-z0-9_.-]{12,})`)

// outboxMails are the raw .eml files of the outbox, decoded as the harness reads them.
func outboxMails(t *testing.T, h *apptest.Harness) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(h.Data, "outbox", "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	for _, addr := range []string{"@"} { // decoded bodies too (quoted-printable links)
		for _, m := range h.Mails(addr) {
			out = append(out, m.Raw)
		}
	}
	if len(out) == 0 {
		t.Fatal("no mail in the outbox")
	}
	return out
}

// keyNeedles are the forms a key file's secret could take in a log: the file's text,
// each long token in it, and each token's (or the file's) bytes raw, quoted, in hex and
// in every base64 alphabet.
func keyNeedles(file []byte) []string {
	var raws [][]byte
	text := strings.TrimSpace(string(file))
	needles := []string{}
	if len(file) == 32 || !isText(file) {
		raws = append(raws, file)
	} else {
		needles = append(needles, text)
		for _, tok := range strings.Fields(text) {
			if len(tok) < 20 {
				continue
			}
			needles = append(needles, tok)
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
				if b, err := enc.DecodeString(tok); err == nil {
					raws = append(raws, b)
					break
				}
			}
		}
	}
	for _, b := range raws {
		needles = append(needles, string(b), hex.EncodeToString(b), strings.Trim(strconv.Quote(string(b)), `"`))
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			needles = append(needles, enc.EncodeToString(b))
		}
		// Half a key is a leak too.
		needles = append(needles, hex.EncodeToString(b[:len(b)/2]), base64.RawStdEncoding.EncodeToString(b[:len(b)/2]))
	}
	return needles
}

func isText(b []byte) bool {
	for _, c := range b {
		if c < 0x20 && c != '\n' && c != '\r' && c != '\t' || c >= 0x7f {
			return false
		}
	}
	return true
}

func uploadFile(t *testing.T, h *apptest.Harness, token, name, body string) apptest.Response {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, err := mw.CreateFormFile("file", name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(fw, body); err != nil {
		t.Fatal(err)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest("POST", h.URL+"/api/v1/me/files", &buf)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := h.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return apptest.Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}
