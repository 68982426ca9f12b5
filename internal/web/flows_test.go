package web_test

import (
	"archive/zip"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// newLink waits for a mail to the address with a link to path other than old.
func (s *site) newLink(to, path, old string) string {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if l := s.link(to, path); l != old {
			return l
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("no new mail to %s with a link to %s", to, path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lacks fails if the page contains any of the strings.
// It reads the page's own content, from <main>: the cookie banner before it has its own
// buttons, on every page until a choice.
func (p page) lacks(t *testing.T, what string, strs ...string) {
	t.Helper()
	for _, s := range strs {
		if strings.Contains(p.main(), s) {
			t.Errorf("%s: page has %q, want not; body:\n%s", what, s, p.body)
		}
	}
}

// main is the page from its <main> on: what it shows besides the header and the
// cookie banner.
func (p page) main() string {
	if i := strings.Index(p.body, "<main"); i >= 0 {
		return p.body[i:]
	}
	return p.body
}

// TestDeadLinks: a used, forged or expired link says so and what to do, and offers no
// button or form that cannot work (issue 12, finding 1).
func TestDeadLinks(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	c := s.client()
	const email = "dennis@example.com"

	// A confirmation link, once used, shows no button.
	c.post("/register", registration(email, "Dennis Ritchie", "the c programming")).wantRedirect(t, "register", "/register/sent")
	link := s.link(email, "/verify")
	c.get(link).want(t, "live verify link", http.StatusOK, "Confirm my email address")
	token := strings.TrimPrefix(link, "/verify?token=")
	c.post("/verify", url.Values{"token": {token}}).wantRedirect(t, "verify", "/verify/done")
	for _, p := range []page{c.get(link), c.post("/verify", url.Values{"token": {token}})} {
		p.want(t, "used verify link", http.StatusBadRequest, "This link is invalid, used or expired.", `href="/login"`, `href="/verify/resend"`)
		p.lacks(t, "used verify link", "Confirm my email address", `name="token"`)
	}

	// A forged opt-out link names nothing and offers no button.
	p := c.get("/unsubscribe?t=bogus")
	p.want(t, "bogus unsubscribe", http.StatusBadRequest, "This opt-out link is not valid or has expired.")
	p.lacks(t, "bogus unsubscribe", "Unsubscribe from", `<button`)

	// A forged reset link fails on opening, not after a new password is typed.
	p = c.get("/password/reset?token=bogus")
	p.want(t, "bogus reset", http.StatusBadRequest, "This link is invalid, used or expired.", `href="/password/forgot"`, `href="/login"`)
	p.lacks(t, "bogus reset", `name="password"`, "Set my new password")
	// A live one shows the form; used, it is dead too.
	c.post("/password/forgot", url.Values{"email": {email}}).wantRedirect(t, "forgot", "/password/forgot/sent")
	reset := s.link(email, "/password/reset")
	c.get(reset).want(t, "live reset link", http.StatusOK, `name="password"`)
	c.post("/password/reset", url.Values{"token": {strings.TrimPrefix(reset, "/password/reset?token=")}, "password": {"plan nine from outer space"}}).
		wantRedirect(t, "reset", "/login?notice=reset")
	c.get(reset).want(t, "used reset link", http.StatusBadRequest, "This link is invalid, used or expired.")
	c.get(reset).lacks(t, "used reset link", `name="password"`)

	// A used guardian link says what happened and what to do.
	p = c.get("/guardian?token=bogus")
	p.want(t, "used guardian link", http.StatusBadRequest, "This link no longer works", `href="/verify/resend"`, `href="/privacy/purposes"`)
	p.lacks(t, "used guardian link", `value="agree"`)
}

// TestGuardianDecline: declining asks once more before it erases; the pages link to
// how data is used; agreeing says the account is active (issue 12, finding 10).
func TestGuardianDecline(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	c := s.client()
	const child, guardian = "tiny@example.com", "mum@example.com"
	form := registration(child, "Tiny Tim", "a christmas carol 1843")
	form.Set("birthdate", time.Now().AddDate(-12, 0, 0).Format("2006-01-02"))
	form.Set("guardian_email", guardian)
	c.post("/register", form).wantRedirect(t, "register", "/register/sent")
	c.post("/verify", url.Values{"token": {strings.TrimPrefix(s.link(child, "/verify"), "/verify?token=")}}).
		wantRedirect(t, "verify", "/verify/done?status=pending_guardian")
	link := s.link(guardian, "/guardian")
	token := strings.TrimPrefix(link, "/guardian?token=")
	g := s.client()
	g.get(link).want(t, "guardian page", http.StatusOK, `href="/privacy/purposes"`)

	// The first Decline only asks.
	p := g.post("/guardian", url.Values{"token": {token}, "decision": {"decline"}})
	p.want(t, "decline asks", http.StatusOK, "Decline and erase the registration?", `name="confirm" value="yes"`, child, `href="/guardian?token=`+token+`"`)
	// Nothing is erased yet: the link still works.
	g.get(link).want(t, "after asking", http.StatusOK, `value="agree"`)
	g.post("/guardian", url.Values{"token": {token}, "decision": {"decline"}, "confirm": {"yes"}}).
		wantRedirect(t, "decline", "/guardian/done?decision=declined")
	g.get(link).want(t, "after declining", http.StatusBadRequest, "This link no longer works")

	g.get("/guardian/done?decision=agreed").want(t, "agreed page", http.StatusOK, "The account is active now", `href="/privacy/purposes"`)
	g.get("/guardian/done?decision=agreed").lacks(t, "agreed page", "as soon as its email address is confirmed")
}

// TestResendConfirmation: the login page links to a form that mails a new link to an
// unconfirmed account, and asks a pending child's guardian again, with one answer
// whatever the address; the "check your email" pages show the address; registering
// again with an unconfirmed address mails a confirmation link (issue 12, finding 3).
func TestResendConfirmation(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	c := s.client()
	c.get("/login").want(t, "login", http.StatusOK, `href="/verify/resend"`, "Send it again")

	const email = "brian@example.com"
	p := c.post("/register", registration(email, "Brian Kernighan", "awk and the c book"))
	p.wantRedirect(t, "register", "/register/sent")
	sent := s.client()
	sent.send(http.MethodGet, "/register/sent", nil, http.Header{"Cookie": {p.header.Get("Set-Cookie")}}).
		want(t, "sent page", http.StatusOK, "<strong>"+email+"</strong>", `href="/verify/resend"`)
	first := s.link(email, "/verify")

	// The same answer for an unknown, an unconfirmed and (below) a confirmed address.
	for _, addr := range []string{"nobody@example.com", email} {
		p := c.post("/verify/resend", url.Values{"email": {addr}})
		p.wantRedirect(t, "resend "+addr, "/verify/resend/sent")
		c.send(http.MethodGet, "/verify/resend/sent", nil, http.Header{"Cookie": {p.header.Get("Set-Cookie")}}).
			want(t, "resend sent", http.StatusOK, "<strong>"+addr+"</strong>")
	}
	second := s.newLink(email, "/verify", first)
	c.get(first).want(t, "older link", http.StatusBadRequest, "This link is invalid, used or expired.")
	c.post("/verify", url.Values{"token": {strings.TrimPrefix(second, "/verify?token=")}}).wantRedirect(t, "verify", "/verify/done?status=active")
	c.post("/verify/resend", url.Values{"email": {email}}).wantRedirect(t, "resend confirmed", "/verify/resend/sent")
	c.post("/verify/resend", url.Values{"email": {"not an address"}}).want(t, "bad address", http.StatusBadRequest, `id="f-email-error"`)

	// Registering again with an unconfirmed address mails a confirmation link.
	const late = "late@example.com"
	c.post("/register", registration(late, "Late Comer", "the tortoise wins again")).wantRedirect(t, "register", "/register/sent")
	one := s.link(late, "/verify")
	c.post("/register", registration(late, "Late Comer", "the tortoise wins again")).wantRedirect(t, "register again", "/register/sent")
	if two := s.find(late, regexp.MustCompile(`Confirm it here[^\n]*/verify\?token=[A-Za-z0-9_-]+`)); strings.Contains(two, one) {
		t.Errorf("the account-exists mail has the old link: %s", two)
	}

	// A child whose guardian has not answered: the guardian is mailed again.
	const child, guardian = "kiddo@example.com", "dad@example.com"
	form := registration(child, "Small Person", "lego bricks forever")
	form.Set("birthdate", time.Now().AddDate(-12, 0, 0).Format("2006-01-02"))
	form.Set("guardian_email", guardian)
	c.post("/register", form).wantRedirect(t, "register child", "/register/sent?guardian=1")
	c.post("/verify", url.Values{"token": {strings.TrimPrefix(s.link(child, "/verify"), "/verify?token=")}}).wantRedirect(t, "verify child", "/verify/done")
	g1 := s.link(guardian, "/guardian")
	c.post("/verify/resend", url.Values{"email": {child}}).wantRedirect(t, "resend child", "/verify/resend/sent")
	s.newLink(guardian, "/guardian", g1)
	c.get(g1).want(t, "older guardian link", http.StatusBadRequest, "This link no longer works")
}

// TestDeepLink: a page that needs a login is returned to after it, and only a path of
// this site is ever followed (issue 12, finding 4).
func TestDeepLink(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	c := s.client()
	const email, password = "linus@example.com", "a kernel of truth"
	s.signUp(t, c, email, "Linus T", password)
	c.post("/logout", url.Values{}).wantRedirect(t, "logout", "/")

	p := c.get("/account/files?x=1")
	p.wantRedirect(t, "files logged out", "/login?next=")
	if got, want := p.location(), "/login?next="+url.QueryEscape("/account/files?x=1"); got != want {
		t.Fatalf("redirect to %q, want %q", got, want)
	}
	c.get(p.location()).want(t, "login form", http.StatusOK, `name="next" value="/account/files?x=1"`)
	c.post("/login", url.Values{"email": {email}, "password": {password}, "next": {"/account/files?x=1"}}).
		wantRedirect(t, "login with next", "/account/files?x=1")

	// A wrong password keeps the way back.
	c.post("/login", url.Values{"email": {email}, "password": {"wrong wrong wrong"}, "next": {"/account/activity"}}).
		want(t, "wrong password", http.StatusUnauthorized, `name="next" value="/account/activity"`)

	for _, bad := range []string{"//evil.example/x", "/\\evil.example", "https://evil.example/", "evil", "/\t/evil.example", ""} {
		p := c.post("/login", url.Values{"email": {email}, "password": {password}, "next": {bad}})
		p.wantRedirect(t, "login next "+bad, "/account")
		if p.location() != "/account" {
			t.Errorf("next %q: redirect to %q, want /account", bad, p.location())
		}
		c.get("/login?next="+url.QueryEscape(bad)).lacks(t, "login form next "+bad, `name="next"`)
	}
}

// TestRegisterKeepsFields: an error elsewhere keeps every field but the password, and
// says plainly that the password must be typed again; a password holding a part of the
// name is refused (issue 12, finding 11).
func TestRegisterKeepsFields(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	c := s.client()
	const password = "correct horse battery"
	form := registration("ada@example.com", "Ada Lovelace", password)
	form.Set("guardian_email", "not an address")
	form.Set("phone", "+49 30 1234567")
	p := c.post("/register", form)
	p.want(t, "bad guardian", http.StatusBadRequest, `id="f-guardian_email-error"`, `id="f-password-error"`,
		"Type your password again", "Your password was not kept: type it again.",
		`value="ada@example.com"`, `value="Ada Lovelace"`, value("+49 30 1234567"), `value="1990-05-17"`, `<option value="DE" selected>`)
	p.lacks(t, "bad guardian", password)
	// The summary, which takes the focus, links to each field in error, in the form's
	// order: the password to type again, then the guardian's address.
	summary := regexp.MustCompile(`(?s)<div class="alert" id="form-error" role="alert" tabindex="-1" autofocus>.*?</div>`).FindString(p.body)
	again, wrong := strings.Index(summary, `href="#f-password"`), strings.Index(summary, `href="#f-guardian_email"`)
	if again < 0 || wrong < again {
		t.Errorf("the error summary does not link to the password, then the guardian's address:\n%s", summary)
	}

	// The password's own error says nothing of typing it again.
	form = registration("ada@example.com", "Ada Lovelace", "lovelace rules ok")
	p = c.post("/register", form)
	p.want(t, "password with the name", http.StatusBadRequest, `id="f-password-error"`, "must not contain your name")
	p.lacks(t, "password with the name", "Type your password again")
}

// TestChildNoPublicProfile: a child's account page says there is no public profile,
// offers no boxes for it, and the service refuses to show anything (issue 12,
// finding 2).
func TestChildNoPublicProfile(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	c := s.client()
	const child, guardian, password = "young@example.com", "elder@example.com", "hopscotch and marbles"
	form := registration(child, "Young One", password)
	form.Set("birthdate", time.Now().AddDate(-14, 0, 0).Format("2006-01-02"))
	form.Set("guardian_email", guardian)
	c.post("/register", form).wantRedirect(t, "register", "/register/sent")
	c.post("/verify", url.Values{"token": {strings.TrimPrefix(s.link(child, "/verify"), "/verify?token=")}}).wantRedirect(t, "verify", "/verify/done")
	g := s.client()
	g.post("/guardian", url.Values{"token": {strings.TrimPrefix(s.link(guardian, "/guardian"), "/guardian?token=")}, "decision": {"agree"}}).
		wantRedirect(t, "agree", "/guardian/done")
	c.post("/login", url.Values{"email": {child}, "password": {password}}).wantRedirect(t, "login", "/account")

	p := c.get("/account")
	p.want(t, "child account", http.StatusOK, "members below the age of consent have\nno public profile")
	p.lacks(t, "child account", "Show on my public profile", "My public profile", `href="/members/`, `name="public_`)

	// Asked anyway (an old form, or by hand), nothing is shown.
	c.post("/account", url.Values{"name": {"Young One"}, "public_name": {"on"}}).
		want(t, "child shows name", http.StatusBadRequest, "members below the age of consent have no public profile")
	c.post("/account", url.Values{"name": {"Young One"}}).wantRedirect(t, "child saves", "/account?saved=1")
}

// TestAccountPage: the current password sits with the email, marked as needed only to
// change it; the public profile names the country; confirming a new address says so
// (issue 12, finding 12).
func TestAccountPage(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	c := s.client()
	const email, password = "barbara@example.com", "liskov substitution"
	id := s.signUp(t, c, email, "Barbara L", password)
	p := c.get("/account")
	p.want(t, "account", http.StatusOK,
		`Current password <span class="need">(needed only to change your email)</span>`, "<legend>Your email address</legend>")
	// The password comes right after the email, inside the email's group, before the phone.
	e, pw, fs, ph := strings.Index(p.body, `id="f-email"`), strings.Index(p.body, `id="f-current_password"`),
		strings.Index(p.body, "</fieldset>"), strings.Index(p.body, `id="f-phone"`)
	if !(e < pw && pw < fs && fs < ph) {
		t.Errorf("order: email %d, current password %d, end of group %d, phone %d", e, pw, fs, ph)
	}

	c.post("/account", url.Values{"country": {"GB"}, "public_country": {"on"}}).wantRedirect(t, "show country", "/account?saved=1")
	pub := c.get("/members/" + id)
	pub.want(t, "public profile", http.StatusOK, "United Kingdom")
	pub.lacks(t, "public profile", ">GB<")

	// A new address, confirmed while logged in.
	c.post("/account", url.Values{"email": {"babs@example.com"}, "current_password": {password}}).wantRedirect(t, "change email", "/account?saved=1")
	link := s.link("babs@example.com", "/verify")
	p = c.post("/verify", url.Values{"token": {strings.TrimPrefix(link, "/verify?token=")}})
	p.wantRedirect(t, "confirm new address", "/verify/done?changed=1")
	p = c.get(p.location())
	p.want(t, "new address confirmed", http.StatusOK, "Your new email address is confirmed", `href="/account"`)
	p.lacks(t, "new address confirmed", "Your account is ready")
}

// TestLogoutOthers: the sessions page and the API end every other session and keep
// this one (issue 12, finding 17).
func TestLogoutOthers(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	const email, password = "margaret@example.com", "apollo guidance computer"
	a, b, api := s.client(), s.client(), s.client()
	s.signUp(t, a, email, "Margaret H", password)
	login := url.Values{"email": {email}, "password": {password}}
	b.post("/login", login).wantRedirect(t, "login b", "/account")
	a.get("/account/sessions").want(t, "sessions", http.StatusOK, `action="/account/sessions/revoke-others"`, "Log out my other sessions")
	a.post("/account/sessions/revoke-others", url.Values{}).wantRedirect(t, "revoke others", "/account/sessions?others=1")
	p := a.get("/account/sessions?others=1")
	p.want(t, "after", http.StatusOK, "Every other session has ended; this one goes on.")
	p.lacks(t, "after", "Log out my other sessions") // one session left: nothing to offer
	b.get("/account").wantRedirect(t, "other session", "/login")
	a.get("/account/activity").want(t, "activity", http.StatusOK, "Logged out of every other session")

	// The API: DELETE /api/v1/sessions/others.
	b.post("/login", login).wantRedirect(t, "login b again", "/account")
	api.post("/login", login).wantRedirect(t, "login api", "/account")
	r := api.send(http.MethodDelete, "/api/v1/sessions/others", nil, http.Header{"Authorization": {"Bearer " + api.session}})
	r.want(t, "api others", http.StatusOK, `"ended":2`)
	b.get("/account").wantRedirect(t, "b after api", "/login")
	a.get("/account").wantRedirect(t, "a after api", "/login")
	api.get("/account").want(t, "the caller's session", http.StatusOK)
}

// TestPlainWords: the activity list says a registration's state and which fields a
// change touched; the export names the public fields; the erasure page names no holder
// by its internal name (issue 12, finding 13, in part).
func TestPlainWords(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	c := s.client()
	const email, password = "frances@example.com", "fortran optimizing"
	s.signUp(t, c, email, "Frances A", password)
	c.post("/account", url.Values{"name": {"Frances Allen"}, "phone": {"+1 914 555 0101"}, "public_name": {"on"}, "public_country": {"on"},
		"country": {"DE"}}).wantRedirect(t, "edit", "/account?saved=1")
	p := c.get("/account/activity")
	p.want(t, "activity", http.StatusOK, "waiting for the email address to be confirmed",
		"changed: Name, Phone number, what your public profile shows")
	p.lacks(t, "activity", "pending_verification", "Frances Allen", "555 0101")

	exp := c.get("/account/export")
	exp.want(t, "export", http.StatusOK)
	zr, err := zip.NewReader(strings.NewReader(exp.body), int64(len(exp.body)))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := zr.Open("account/account.json")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if !strings.Contains(string(b), `"public_fields": "name,country"`) || strings.Contains(string(b), "public_mask") {
		t.Errorf("the export does not name the public fields:\n%s", b)
	}

	p = c.post("/account/delete", url.Values{"password": {password}})
	p.wantRedirect(t, "delete", "/erasures/")
	erasure := p.location()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(c.get(erasure).body, "Your account is deleted") {
		if time.Now().After(deadline) {
			t.Fatal("the erasure did not finish")
		}
		time.Sleep(20 * time.Millisecond)
	}
	p = c.get(erasure)
	p.want(t, "erasure", http.StatusOK, "Your consent decisions and privacy choices", "Any staff roles your account held")
	for _, h := range s.app.Registry().Holders() {
		p.lacks(t, "erasure", "<li>"+h.Declaration().Name+"</li>")
	}
	p.lacks(t, "erasure", "Other records held about you")
}
