package web_test

import (
	"archive/zip"
	"bytes"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"steward/internal/app"
	"steward/internal/config"
	"steward/internal/server"
	"steward/internal/store/storetest"
)

// site is a running Steward behind an httptest server.
type site struct {
	t      *testing.T
	app    *app.App
	url    string
	outbox string
	data   string
}

// start boots the whole app on a fresh database (dbURL "" for SQLite in the data
// folder) with extra flags.
func start(t *testing.T, dbURL string, flags ...string) *site {
	t.Helper()
	data := t.TempDir()
	args := []string{"--data", data, "--argon2-memory", "1024", "--rate-limits=false"}
	if dbURL != "" {
		args = append(args, "--database", dbURL)
	}
	cfg, _, err := config.Load(append(args, flags...), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(t.Context(), cfg, slog.New(slog.NewTextHandler(t.Output(), nil)), app.WithPoll(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if err := a.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	return &site{t: t, app: a, url: srv.URL, outbox: filepath.Join(data, "outbox"), data: data}
}

// client is a browser without a cookie jar: it carries the session cookie by hand
// and does not follow redirects, so that tests see both.
type client struct {
	t       *testing.T
	base    string
	hc      *http.Client
	session string
}

func (s *site) client() *client {
	return &client{t: s.t, base: s.url, hc: &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}}
}

// page is an answer.
type page struct {
	status int
	header http.Header
	body   string
}

func (p page) location() string { return p.header.Get("Location") }

func (c *client) get(path string) page { return c.do(http.MethodGet, path, nil) }

func (c *client) post(path string, form url.Values) page { return c.do(http.MethodPost, path, form) }

func (c *client) do(method, path string, form url.Values) page {
	c.t.Helper()
	var body io.Reader
	header := http.Header{}
	if form != nil {
		body = strings.NewReader(form.Encode())
		header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return c.send(method, path, body, header)
}

// send makes a request with the session cookie and any headers.
func (c *client) send(method, path string, body io.Reader, header http.Header) page {
	c.t.Helper()
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if c.session != "" {
		req.AddCookie(&http.Cookie{Name: server.CookieName, Value: c.session})
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == server.CookieName {
			if ck.MaxAge < 0 || ck.Value == "" {
				c.session = ""
			} else {
				c.session = ck.Value
			}
		}
	}
	return page{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// want fails unless the page has the status and contains every string.
func (p page) want(t *testing.T, what string, status int, contains ...string) {
	t.Helper()
	if p.status != status {
		t.Fatalf("%s: status = %d, want %d; body:\n%s", what, p.status, status, p.body)
	}
	for _, s := range contains {
		if !strings.Contains(p.body, s) {
			t.Errorf("%s: page lacks %q; body:\n%s", what, s, p.body)
		}
	}
}

// wantRedirect fails unless the page is a 303 to a location starting with to.
func (p page) wantRedirect(t *testing.T, what, to string) {
	t.Helper()
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.location(), to) {
		t.Fatalf("%s: got %d to %q, want 303 to %s; body:\n%s", what, p.status, p.location(), to, p.body)
	}
}

// link waits for a mail to the address holding a link to path and returns the link's
// path and query. The newest such mail wins.
func (s *site) link(to, path string) string {
	s.t.Helper()
	return s.find(to, regexp.MustCompile(regexp.QuoteMeta(path)+`\?token=[A-Za-z0-9_-]+`))
}

// find waits for a mail to the address whose text matches re and returns the match.
// The newest such mail wins.
func (s *site) find(to string, re *regexp.Regexp) string {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		names, _ := filepath.Glob(filepath.Join(s.outbox, "*.eml"))
		slices.Sort(names)
		for _, name := range slices.Backward(names) {
			raw, err := os.ReadFile(name)
			if err != nil {
				continue
			}
			rcpt, text, err := mailText(raw)
			if err != nil {
				s.t.Fatalf("%s: %v", name, err)
			}
			if !strings.Contains(rcpt, to) {
				continue
			}
			if m := re.FindString(text); m != "" {
				return m
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("no mail to %s matching %s in %s", to, re, s.outbox)
	return ""
}

// mailText returns the recipient and the plain-text body of a mail, decoded.
func mailText(raw []byte) (to, text string, err error) {
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return "", "", err
	}
	to = m.Header.Get("To")
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		return "", "", err
	}
	if !strings.HasPrefix(mt, "multipart/") {
		b, err := io.ReadAll(m.Body)
		return to, string(b), err
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		part, err := mr.NextPart() // decodes quoted-printable
		if err == io.EOF {
			return to, "", nil
		}
		if err != nil {
			return "", "", err
		}
		b, err := io.ReadAll(part)
		if err != nil {
			return "", "", err
		}
		if strings.HasPrefix(part.Header.Get("Content-Type"), "text/plain") {
			return to, string(b), nil
		}
	}
}

// registration is a valid registration form for an adult in Germany.
func registration(email, name, password string) url.Values {
	return url.Values{"email": {email}, "name": {name}, "password": {password}, "birthdate": {"1990-05-17"}, "country": {"DE"}}
}

// value is the attribute an input holding v has, escaped as html/template does.
func value(v string) string {
	var b strings.Builder
	template.Must(template.New("").Parse(`<input value="{{.}}">`)).Execute(&b, v)
	return strings.TrimSuffix(strings.TrimPrefix(b.String(), "<input "), ">")
}

var memberLink = regexp.MustCompile(`href="/members/([0-9a-f]+)"`)

// signUp registers, confirms the address and logs c in; it returns the account id.
func (s *site) signUp(t *testing.T, c *client, email, name, password string) string {
	t.Helper()
	c.post("/register", registration(email, name, password)).wantRedirect(t, "register", "/register/sent")
	verify := s.link(email, "/verify")
	c.post("/verify", url.Values{"token": {strings.TrimPrefix(verify, "/verify?token=")}}).
		wantRedirect(t, "verify", "/verify/done?status=active")
	c.post("/login", url.Values{"email": {email}, "password": {password}}).wantRedirect(t, "login", "/account")
	acct := c.get("/account")
	acct.want(t, "account", http.StatusOK)
	m := memberLink.FindStringSubmatch(acct.body)
	if m == nil {
		t.Fatalf("account page has no link to the public profile:\n%s", acct.body)
	}
	return m[1]
}

func TestRegisterFormLabels(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		fields  string
		want    []string
		notWant []string
	}{
		{
			name:   "defaults",
			fields: "",
			want: []string{
				`Name <span class="need">(required)</span>`,
				`Email address <span class="need">(required)</span>`,
				`Password <span class="need">(required)</span>`,
				`Phone number <span class="need">(optional)</span>`,
				`Home address <span class="need">(optional)</span>`,
				`Business address <span class="need">(optional)</span>`,
				`Date of birth <span class="need">(required)</span>`,
				`Country <span class="need">(required)</span>`,
				`<option value="DE">Germany</option>`,
				`name="guardian_email"`,
				`Parent or guardian’s email address <span class="need">(optional)</span>`,
				`digital age of consent`,
			},
		},
		{
			name:   "operator choices",
			fields: "name=optional,phone=required,home_address=optional,business_address=off",
			want: []string{
				`Name <span class="need">(optional)</span>`,
				`Phone number <span class="need">(required)</span>`,
				`Home address <span class="need">(optional)</span>`,
			},
			notWant: []string{`name="business_address"`, "Business address"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var flags []string
			if tt.fields != "" {
				flags = append(flags, "--fields", tt.fields)
			}
			s := start(t, "", flags...)
			p := s.client().get("/register")
			p.want(t, "register form", http.StatusOK, tt.want...)
			for _, s := range tt.notWant {
				if strings.Contains(p.body, s) {
					t.Errorf("register form has %q, want not", s)
				}
			}
			if got := p.header.Get("Content-Type"); got != "text/html; charset=utf-8" {
				t.Errorf("Content-Type = %q, want text/html; charset=utf-8", got)
			}
			if got := p.header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
			}
			// The CSP forbids inline styles and scripts; the pages use neither.
			for _, s := range []string{"<script", "style=", "<style", "onclick", "javascript:", "zgotmplz"} {
				if strings.Contains(strings.ToLower(p.body), s) {
					t.Errorf("register form contains %q", s)
				}
			}
		})
	}
}

func TestRegisterErrors(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	const password = "correct horse battery"
	child := time.Now().AddDate(-12, 0, 0).Format("2006-01-02")
	tests := []struct {
		name  string
		edit  func(url.Values)
		field string
		want  []string
	}{
		{"missing name", func(v url.Values) { v.Del("name") }, "name", []string{"Name is required."}},
		{"bad email", func(v url.Values) { v.Set("email", "not-an-address") }, "email",
			[]string{"Email address is not a valid email address.", `value="not-an-address"`}},
		{"short password", func(v url.Values) { v.Set("password", "short") }, "password", []string{"Password must be at least 10 characters."}},
		{"bad date", func(v url.Values) { v.Set("birthdate", "17/05/1990") }, "birthdate", []string{"Date of birth must be a date as YYYY-MM-DD."}},
		{"no country", func(v url.Values) { v.Del("country") }, "country", []string{"Country is required."}},
		{"child without guardian", func(v url.Values) { v.Set("birthdate", child) }, "guardian_email",
			[]string{"is required: below 16 a parent or guardian must agree"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := registration("ada@example.com", "Ada Lovelace", password)
			form.Set("phone", "+49 30 1234567")
			tt.edit(form)
			p := s.client().post("/register", form)
			p.want(t, "register", http.StatusBadRequest, tt.want...)
			// The message sits beside its field, and the field is marked.
			errID := `id="f-` + tt.field + `-error"`
			if !strings.Contains(p.body, errID) {
				t.Errorf("no error element %s beside the field:\n%s", errID, p.body)
			}
			if !strings.Contains(p.body, `id="f-`+tt.field+`"`) {
				t.Errorf("the form lost the field %s", tt.field)
			}
			// What was typed stays, except the password.
			for _, f := range []string{"email", "name", "phone"} {
				if v := form.Get(f); v != "" && !strings.Contains(p.body, value(v)) {
					t.Errorf("field %s lost its value %q", f, v)
				}
			}
			if strings.Contains(p.body, password) {
				t.Error("the page sends the password back")
			}
		})
	}
}

func TestLoginRequired(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	c := s.client()
	tests := []struct {
		method, path string
	}{
		{"GET", "/account"},
		{"POST", "/account"},
		{"GET", "/account/export"},
		{"GET", "/account/sessions"},
		{"POST", "/account/sessions/revoke-all"},
		{"GET", "/account/password"},
		{"POST", "/account/password"},
		{"GET", "/account/activity"},
		{"GET", "/account/delete"},
		{"POST", "/account/delete"},
		{"GET", "/account/files"},
		{"POST", "/account/files"},
		{"GET", "/account/files/0123456789abcdef/download"},
		{"POST", "/account/files/0123456789abcdef/delete"},
		{"GET", "/account/preferences"},
		{"POST", "/account/preferences"},
		{"GET", "/account/preferences/receipts/1"},
		{"GET", "/account/preferences/receipts/1/download"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			var form url.Values
			if tt.method == "POST" {
				form = url.Values{"password": {"whatever it is"}}
			}
			c.session = "not-a-session"
			p := c.do(tt.method, tt.path, form)
			p.wantRedirect(t, tt.path, "/login")
			if c.session != "" {
				t.Error("a dead session cookie is not cleared")
			}
		})
	}
}

func TestPages(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	c := s.client()
	tests := []struct {
		path        string
		status      int
		contentType string
		want        string
	}{
		{"/", http.StatusOK, "text/html; charset=utf-8", "Create an account"},
		{"/login", http.StatusOK, "text/html; charset=utf-8", `action="/login"`},
		{"/password/forgot", http.StatusOK, "text/html; charset=utf-8", `action="/password/forgot"`},
		{"/nowhere", http.StatusNotFound, "text/html; charset=utf-8", "Page not found"},
		{"/members/0123456789abcdef", http.StatusNotFound, "text/html; charset=utf-8", "Page not found"},
		{"/erasures/0123456789abcdef", http.StatusNotFound, "text/html; charset=utf-8", "Page not found"},
		{"/static/", http.StatusNotFound, "text/html; charset=utf-8", "Page not found"},
		{"/static/style.css", http.StatusOK, "text/css; charset=utf-8", "font-family"},
		{"/verify", http.StatusBadRequest, "text/html; charset=utf-8", "This link is incomplete"},
		{"/guardian?token=nope", http.StatusBadRequest, "text/html; charset=utf-8", "This link is invalid, used or expired."},
		// The API keeps its own JSON answers.
		{"/api/v1/nowhere", http.StatusNotFound, "application/json; charset=utf-8", `"no_route"`},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			p := c.get(tt.path)
			p.want(t, tt.path, tt.status, tt.want)
			if got := p.header.Get("Content-Type"); got != tt.contentType {
				t.Errorf("Content-Type = %q, want %q", got, tt.contentType)
			}
		})
	}
	// An invalid verification link is refused on GET already, without a button.
	p := c.get("/verify?token=nope")
	p.want(t, "verify page", http.StatusBadRequest, "This link is invalid, used or expired.", `href="/verify/resend"`, `href="/login"`)
	if strings.Contains(p.body, "Confirm my email address") {
		t.Error("an invalid verification link still offers its button")
	}
	c.post("/verify", url.Values{"token": {"nope"}}).want(t, "verify", http.StatusBadRequest, "This link is invalid, used or expired.")
}

// TestFlow walks a member's whole life through the pages, on every engine.
func TestFlow(t *testing.T) {
	t.Parallel()
	for dialect, dbURL := range storetest.Engines(t) {
		t.Run(string(dialect), func(t *testing.T) {
			t.Parallel()
			testFlow(t, start(t, dbURL))
		})
	}
}

func testFlow(t *testing.T, s *site) {
	c := s.client()
	const (
		email    = "grace@example.com"
		name     = "Grace Hopper"
		phone    = "+1 212 555 0100"
		password = "cobol compiler 1959"
	)
	form := registration(email, name, password)
	form.Set("phone", phone)
	c.post("/register", form).wantRedirect(t, "register", "/register/sent")
	c.get("/register/sent").want(t, "sent page", http.StatusOK, "Check your email")

	// Opening the link shows a button and changes nothing.
	link := s.link(email, "/verify")
	c.get(link).want(t, "verify page", http.StatusOK, "Confirm my email address", `name="token"`)
	c.post("/login", url.Values{"email": {email}, "password": {password}}).
		want(t, "login before confirming", http.StatusUnauthorized, "Wrong email or password.", "Just registered?")
	token := strings.TrimPrefix(link, "/verify?token=")
	p := c.post("/verify", url.Values{"token": {token}})
	p.wantRedirect(t, "verify", "/verify/done?status=active")
	c.get(p.location()).want(t, "verify done", http.StatusOK, "Your account is ready", `href="/login"`)

	// Log in.
	c.post("/login", url.Values{"email": {email}, "password": {"not the password"}}).
		want(t, "wrong password", http.StatusUnauthorized, "Wrong email or password.", `value="`+email+`"`)
	c.post("/login", url.Values{"email": {email}, "password": {password}}).wantRedirect(t, "login", "/account")
	if c.session == "" {
		t.Fatal("login set no session cookie")
	}
	acct := c.get("/account")
	acct.want(t, "account", http.StatusOK, `value="`+name+`"`, `value="`+email+`"`, value(phone), "confirmed",
		`action="/logout"`, `href="/account/export"`, `href="/account/sessions"`, `href="/account/delete"`)
	if got := acct.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("account Cache-Control = %q, want no-store", got)
	}
	id := memberLink.FindStringSubmatch(acct.body)[1]

	// Nothing is public until chosen.
	pub := c.get("/members/" + id)
	pub.want(t, "public profile", http.StatusOK, "A member")
	if strings.Contains(pub.body, name) {
		t.Error("the public profile shows the name before it was made public")
	}

	// A bad edit keeps what was typed and names the field.
	edit := url.Values{"name": {"Grace B. Hopper"}, "email": {email}, "phone": {"call me"}, "home_address": {""},
		"business_address": {""}, "birthdate": {"1990-05-17"}, "country": {"US"}, "public_name": {"on"}}
	p = c.post("/account", edit)
	p.want(t, "bad edit", http.StatusBadRequest, `id="f-phone-error"`, "Phone number may hold only digits", `value="Grace B. Hopper"`, `value="call me"`)

	// A good one is saved, and the name is made public.
	edit.Set("phone", phone)
	c.post("/account", edit).wantRedirect(t, "edit", "/account?saved=1")
	c.get("/account?saved=1").want(t, "saved", http.StatusOK, "Your changes are saved.", `value="Grace B. Hopper"`,
		`<option value="US" selected>United States</option>`)

	pub = c.get("/members/" + id)
	pub.want(t, "public profile", http.StatusOK, "Grace B. Hopper")
	for _, private := range []string{email, "555 0100", "1990-05-17", "United States", ">US<"} {
		if strings.Contains(pub.body, private) {
			t.Errorf("the public profile shows %q, which was not made public", private)
		}
	}

	// Download my data.
	p = c.get("/account/export")
	p.want(t, "export", http.StatusOK)
	if got := p.header.Get("Content-Type"); got != "application/zip" {
		t.Fatalf("export Content-Type = %q, want application/zip", got)
	}
	zr, err := zip.NewReader(strings.NewReader(p.body), int64(len(p.body)))
	if err != nil {
		t.Fatalf("export is not a zip: %v", err)
	}
	var all strings.Builder
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		all.Write(b)
	}
	for _, want := range []string{"Grace B. Hopper", email, phone} {
		if !strings.Contains(all.String(), want) {
			t.Errorf("the export lacks %q", want)
		}
	}

	// Sessions: one, this one; another account's (or no) session is not found.
	p = c.get("/account/sessions")
	p.want(t, "sessions", http.StatusOK, "this session", "Go-http-client")
	if n := strings.Count(p.body, `/revoke"`); n != 1 {
		t.Errorf("sessions page lists %d sessions, want 1", n)
	}
	c.post("/account/sessions/"+strings.Repeat("0", 64)+"/revoke", url.Values{}).want(t, "revoke unknown", http.StatusNotFound, "Page not found")
	c.get("/account/activity").want(t, "activity", http.StatusOK, "Logged in", "Failed login attempt", "Profile changed")

	// Log out, and back in.
	c.post("/logout", url.Values{}).wantRedirect(t, "logout", "/")
	if c.session != "" {
		t.Error("logout left the cookie")
	}
	c.get("/account").wantRedirect(t, "account after logout", "/login")
	c.post("/login", url.Values{"email": {email}, "password": {password}}).wantRedirect(t, "login again", "/account")
	stolen := c.session

	// Delete the account: the wrong password is refused, the right one accepted.
	c.get("/account/delete").want(t, "delete page", http.StatusOK, "cannot be undone", `name="password"`)
	c.post("/account/delete", url.Values{"password": {"not the password"}}).
		want(t, "delete with wrong password", http.StatusBadRequest, `id="f-password-error"`, "Password is not your current password.")
	p = c.post("/account/delete", url.Values{"password": {password}})
	p.wantRedirect(t, "delete", "/erasures/")
	if c.session != "" {
		t.Error("deletion left the cookie")
	}
	erasure := p.location()
	c.get(erasure).want(t, "erasure page", http.StatusOK, "Your account is", strings.TrimPrefix(erasure, "/erasures/"))
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(c.get(erasure).body, "Your account is deleted") {
		if time.Now().After(deadline) {
			t.Fatalf("the erasure did not finish:\n%s", c.get(erasure).body)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The account is gone: no session, no login, no public profile.
	c.session = stolen
	c.get("/account").wantRedirect(t, "account after deletion", "/login")
	c.post("/login", url.Values{"email": {email}, "password": {password}}).
		want(t, "login after deletion", http.StatusUnauthorized, "Wrong email or password.")
	c.get("/members/"+id).want(t, "public profile after deletion", http.StatusNotFound, "Page not found")
}

func TestPublicProfileEscapes(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	c := s.client()
	const attack = `<script>alert("x")</script>`
	id := s.signUp(t, c, "mallory@example.com", attack, "a perfectly fine passphrase")
	c.post("/account", url.Values{"name": {attack}, "public_name": {"on"}}).wantRedirect(t, "edit", "/account?saved=1")
	p := c.get("/members/" + id)
	p.want(t, "public profile", http.StatusOK, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;")
	if strings.Contains(p.body, "<script") {
		t.Errorf("the name is not escaped:\n%s", p.body)
	}
}

func TestPasswordReset(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	c := s.client()
	const email = "ken@example.com"
	s.signUp(t, c, email, "Ken Thompson", "unix was first")
	other := s.client()
	// The same answer for an unknown address.
	for _, addr := range []string{"nobody@example.com", email} {
		other.post("/password/forgot", url.Values{"email": {addr}}).wantRedirect(t, "forgot "+addr, "/password/forgot/sent")
	}
	other.get("/password/forgot/sent").want(t, "sent", http.StatusOK, "If an account exists for that address")
	link := s.link(email, "/password/reset")
	other.get(link).want(t, "reset form", http.StatusOK, `name="token"`, `name="password"`)
	token := strings.TrimPrefix(link, "/password/reset?token=")
	other.post("/password/reset", url.Values{"token": {token}, "password": {"short"}}).
		want(t, "short password", http.StatusBadRequest, `id="f-password-error"`, "New password must be at least 10 characters.")
	other.post("/password/reset", url.Values{"token": {token}, "password": {"plan nine from bell labs"}}).
		wantRedirect(t, "reset", "/login?notice=reset")
	// Every session ended with the reset.
	c.get("/account").wantRedirect(t, "old session", "/login")
	other.post("/login", url.Values{"email": {email}, "password": {"plan nine from bell labs"}}).wantRedirect(t, "login", "/account")
}

func TestGuardianConsent(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	c := s.client()
	const (
		child    = "kid@example.com"
		guardian = "parent@example.com"
		password = "treehouse secret 42"
	)
	form := registration(child, "Young Coder", password)
	form.Set("birthdate", time.Now().AddDate(-12, 0, 0).Format("2006-01-02"))
	form.Set("guardian_email", guardian)
	form.Set("phone", "+49 30 1234567") // optional: not kept until the guardian agrees
	p := c.post("/register", form)
	p.wantRedirect(t, "register", "/register/sent?guardian=1")
	c.get(p.location()).want(t, "sent", http.StatusOK, "a parent or guardian must also agree", "Once you have confirmed your address")

	p = c.post("/verify", url.Values{"token": {strings.TrimPrefix(s.link(child, "/verify"), "/verify?token=")}})
	p.wantRedirect(t, "verify", "/verify/done?status=pending_guardian")
	c.get(p.location()).want(t, "verify done", http.StatusOK, "once your parent or guardian agrees")
	c.post("/login", url.Values{"email": {child}, "password": {password}}).
		want(t, "login before consent", http.StatusUnauthorized, "Wrong email or password.")

	g := s.client()
	link := s.link(guardian, "/guardian")
	g.get(link).want(t, "guardian page", http.StatusOK, "Young Coder", child, `value="agree"`, `value="decline"`)
	token := strings.TrimPrefix(link, "/guardian?token=")
	g.post("/guardian", url.Values{"token": {token}, "decision": {"maybe"}}).want(t, "no decision", http.StatusBadRequest, "Choose Agree or Decline.")
	g.post("/guardian", url.Values{"token": {token}, "decision": {"agree"}}).wantRedirect(t, "agree", "/guardian/done?decision=agreed")
	g.post("/guardian", url.Values{"token": {token}, "decision": {"agree"}}).want(t, "used link", http.StatusBadRequest, "This link is invalid, used or expired.")

	c.post("/login", url.Values{"email": {child}, "password": {password}}).wantRedirect(t, "login", "/account")
	acct := c.get("/account")
	acct.want(t, "account", http.StatusOK, "Parent or guardian: "+guardian, "agreed")
	if strings.Contains(acct.body, "1234567") {
		t.Error("an optional field given before the guardian agreed was kept")
	}
	// The child cannot make themselves an adult (issue 11, defect 6).
	c.post("/account", url.Values{"birthdate": {"1990-01-01"}}).
		want(t, "child changes birthdate", http.StatusBadRequest, "can be changed only with your parent or guardian")
	c.get("/account").want(t, "account after refusal", http.StatusOK, time.Now().AddDate(-12, 0, 0).Format("2006-01-02"))
}

func TestRateLimits(t *testing.T) {
	t.Parallel()
	s := start(t, "", "--rate-limits=true")
	c := s.client()
	login := url.Values{"email": {"someone@example.com"}, "password": {"guessing away now"}}
	for i := range 5 {
		c.post("/login", login).want(t, fmt.Sprintf("login %d", i+1), http.StatusUnauthorized, "Wrong email or password.")
	}
	p := c.post("/login", login)
	p.want(t, "login 6", http.StatusTooManyRequests, "Too many attempts; wait a minute and try again.", value("someone@example.com"))
	if got := p.header.Get("Retry-After"); got != "60" {
		t.Errorf("Retry-After = %q, want 60", got)
	}
}
