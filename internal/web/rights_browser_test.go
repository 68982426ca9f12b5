package web_test

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"steward/internal/app"
	"steward/internal/app/apptest"
	"steward/internal/requests"
	"steward/internal/store/storetest"
)

// rightsTab is one person's browser: a browser context of its own (cookies) on the
// site, with a deadline, and the steps the flows share.
type rightsTab struct {
	t    *testing.T
	ctx  context.Context
	base string
	app  *app.App
}

func (s *site) tab(t *testing.T, root context.Context) *rightsTab {
	ctx, cancel := chromedp.NewContext(root, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	ctx, cancelT := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(cancelT)
	return &rightsTab{t: t, ctx: ctx, base: s.url, app: s.app}
}

func (b *rightsTab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// until waits until the tab's address holds part and its document has loaded.
func (b *rightsTab) until(what, part string) {
	b.t.Helper()
	for {
		got, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](`[location.href, document.readyState]`))
		if err == nil && strings.Contains(got[0], part) && got[1] == "complete" {
			return
		}
		select {
		case <-b.ctx.Done():
			b.t.Fatalf("%s: the address never held %q (last %v, %v)", what, part, got, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (b *rightsTab) text(what, sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	return s
}

func (b *rightsTab) login(email, password string) {
	b.t.Helper()
	b.do("log in as "+email,
		chromedp.Navigate(b.base+"/login"),
		chromedp.WaitVisible(chromedp.ID("page-login")),
		chromedp.SendKeys(chromedp.ID("f-email"), email),
		chromedp.SendKeys(chromedp.ID("f-password"), password),
		chromedp.Click(chromedp.CSS(`#page-login button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("page-account")),
	)
}

// staffLogin logs a staff account in with its password and a code of its second
// factor, and waits for the first staff page.
func (b *rightsTab) staffLogin(email, password, accountID string) {
	b.t.Helper()
	code, err := apptest.NextCode(b.t.Context(), b.app, accountID)
	if err != nil {
		b.t.Fatal(err)
	}
	b.do("log in as "+email,
		chromedp.Navigate(b.base+"/login"),
		chromedp.WaitVisible(chromedp.ID("page-login")),
		chromedp.SendKeys(chromedp.ID("f-email"), email),
		chromedp.SendKeys(chromedp.ID("f-password"), password),
		chromedp.Click(chromedp.CSS(`#page-login button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("page-second-factor")),
		chromedp.SendKeys(chromedp.ID("f-totp"), code),
		chromedp.Click(chromedp.CSS(`#page-second-factor button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`body.staff`)),
	)
}

// fetch has the page ask for path with its own cookies and returns the status and the
// Content-Type of the answer.
func (b *rightsTab) fetch(path string) (int, string) {
	b.t.Helper()
	got, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]any](`fetch(`+jsString(path)+`, {credentials: "same-origin"}).
		then(r => r.arrayBuffer().then(() => [r.status, r.headers.get("Content-Type") || ""]))`, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("fetch %s: %v", path, err)
	}
	status, _ := got[0].(float64)
	ctype, _ := got[1].(string)
	return int(status), ctype
}

// submit has the page send the form matching sel with fetch and returns the status
// and the Content-Type of the answer, and its text when it is not a file.
func (b *rightsTab) submit(sel string) (int, string) {
	b.t.Helper()
	got, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]any](`(() => { const f = document.querySelector(`+jsString(sel)+`);
		return fetch(f.action, {method: "POST", body: new URLSearchParams(new FormData(f)), credentials: "same-origin"}).
		then(r => r.arrayBuffer().then(() => [r.status, r.headers.get("Content-Type") || ""])); })()`, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("submit %s: %v", sel, err)
	}
	status, _ := got[0].(float64)
	ctype, _ := got[1].(string)
	return int(status), ctype
}

func jsString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}

// TestRightsInBrowser exercises the rights through the pages in Chromium, on every
// engine: a member asks for a copy, a correction and a complaint and withdraws one;
// restricts processing, objects and withdraws a consent and lifts the restriction; a
// visitor asks without an account and confirms by the mailed link; the DPO works the
// request (extends it with a reason that is mailed, then answers it); a guardian
// agrees to a child's account, stops the use of the child's data, downloads it and
// erases the child's account.
func TestRightsInBrowser(t *testing.T) {
	t.Parallel()
	root := browserContext(t)
	for dialect, dbURL := range storetest.Engines(t) {
		t.Run(string(dialect), func(t *testing.T) {
			s := start(t, dbURL, "--dpo-contact", "Jane Roe, dpo@example.com")
			memberRights(t, s, root)
			visitorAndDPO(t, s, root)
			guardianRights(t, s, root)
			heldErasure(t, s, root)
		})
	}
}

func memberRights(t *testing.T, s *site, root context.Context) {
	const email, password = "ada@example.com", "analytical engine 1843"
	id := s.signUp(t, s.client(), email, "Ada Lovelace", password)
	b := s.tab(t, root)
	b.login(email, password)
	today := requests.DueDate(time.Now(), 0).Long()

	// Ask for a correction; it is listed with its due date, one month from today.
	b.do("ask for a correction",
		chromedp.Navigate(b.base+"/account/requests"),
		chromedp.WaitVisible(chromedp.ID("page-requests")),
		chromedp.SetValue(chromedp.ID("f-right"), requests.Rectification),
		chromedp.SendKeys(chromedp.ID("f-details"), "My name at birth was Byron."),
		chromedp.Click(chromedp.CSS(`#ask button[type="submit"]`)),
	)
	b.until("ask for a correction", "notice=sent")
	if got := b.text("history", "#history"); !strings.Contains(got, "My name at birth was Byron.") || !strings.Contains(got, today) {
		t.Fatalf("after asking, the history reads %q, want the correction due %s", got, today)
	}
	// Withdraw it.
	b.do("withdraw the correction",
		chromedp.Click(chromedp.CSS(`#history form[action$="/withdraw"] button`)),
	)
	b.until("withdraw the correction", "notice=withdrawn")
	list, err := s.app.Requests().List(t.Context(), id)
	if err != nil || len(list) != 1 || list[0].State != requests.Withdrawn {
		t.Fatalf("after withdrawing, the member's requests = %+v, %v", list, err)
	}
	// A complaint and a copy of the data.
	b.do("complain",
		chromedp.SetValue(chromedp.ID("f-right"), requests.Complaint),
		chromedp.SendKeys(chromedp.ID("f-details"), "You mailed me twice."),
		chromedp.Click(chromedp.CSS(`#ask button[type="submit"]`)),
	)
	b.until("complain", "notice=sent")
	b.do("ask for a copy", chromedp.Navigate(b.base+"/account/requests"), chromedp.WaitVisible(chromedp.ID("page-requests")),
		chromedp.Click(chromedp.CSS(`#right-access button[type="submit"]`)))
	b.until("ask for a copy", "notice=")
	if got := b.text("contacts", "#contacts"); !strings.Contains(got, "Jane Roe, dpo@example.com") {
		t.Errorf("the contacts read %q, want the DPO named", got)
	}
	list, err = s.app.Requests().List(t.Context(), id)
	if err != nil || len(list) != 3 {
		t.Fatalf("after a complaint and a copy, the member's requests = %+v, %v", list, err)
	}
	rights := map[string]bool{}
	for _, r := range list {
		rights[r.Right] = true
	}
	if !rights[requests.Complaint] || !rights[requests.Access] {
		t.Errorf("the member's requests are of %v, want a complaint and an access", rights)
	}
	href, err := chromedp.Run(b.ctx, chromedp.AttributeValue(chromedp.CSS(`#right-access a[download]`), "href"))
	if err != nil {
		t.Fatal(err)
	}
	if status, ctype := b.fetch(href.Value); status != http.StatusOK || ctype != "application/zip" {
		t.Errorf("the download of one's data answered %d %q, want 200 application/zip", status, ctype)
	}

	// Restrict processing, object, withdraw the newsletter: the ledger says each.
	save := func(what string, boxes ...string) {
		t.Helper()
		steps := []chromedp.Action[chromedp.Void]{chromedp.Navigate(b.base + "/account/preferences"),
			chromedp.WaitVisible(chromedp.ID("page-preferences"))}
		for _, id := range boxes {
			steps = append(steps, chromedp.Click(chromedp.ID(id)))
		}
		b.do(what, append(steps, chromedp.Click(chromedp.CSS(`#page-preferences form.form button[type="submit"]`)))...)
		b.until(what, "saved=1")
	}
	save("grant the newsletter", "c-newsletter")
	if v, err := s.app.Consent().Allowed(t.Context(), id, "newsletter"); err != nil || !v.Allowed {
		t.Fatalf("after granting, the newsletter is allowed = %+v, %v", v, err)
	}
	save("restrict, object and withdraw", "c-newsletter", "f-restricted", "f-objected")
	f, err := s.app.Consent().Flags(t.Context(), id)
	if err != nil || !f.Restricted || !f.Objected {
		t.Fatalf("after restricting and objecting, the flags are %+v, %v", f, err)
	}
	if v, err := s.app.Consent().Allowed(t.Context(), id, "newsletter"); err != nil || v.Allowed {
		t.Fatalf("after withdrawing, the newsletter is allowed = %+v, %v", v, err)
	}
	save("lift the restriction", "f-restricted")
	if f, err := s.app.Consent().Flags(t.Context(), id); err != nil || f.Restricted || !f.Objected {
		t.Fatalf("after lifting the restriction, the flags are %+v, %v", f, err)
	}
}

func visitorAndDPO(t *testing.T, s *site, root context.Context) {
	const (
		visitor           = "vera@example.com"
		staff, staffPW    = "grace@example.com", "compiler cobol 1959"
		extension, answer = "We need to search the archive too.", "We hold nothing else about you."
		visitorDetails    = "Which lists am I on?"
	)
	v := s.tab(t, root)
	v.do("ask without an account",
		chromedp.Navigate(v.base+"/requests/new"),
		chromedp.WaitVisible(chromedp.ID("page-request-new")),
		chromedp.SendKeys(chromedp.ID("f-name"), "Vera Visitor"),
		chromedp.SendKeys(chromedp.ID("f-email"), visitor),
		chromedp.SetValue(chromedp.ID("f-right"), requests.Inquiry),
		chromedp.SendKeys(chromedp.ID("f-details"), visitorDetails),
		chromedp.Click(chromedp.CSS(`#page-request-new button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("page-request-sent")),
	)
	v.do("confirm the address",
		chromedp.Navigate(v.base+s.link(visitor, "/requests/confirm")),
		chromedp.WaitVisible(chromedp.ID("page-request-confirm")),
		chromedp.Click(chromedp.CSS(`#page-request-confirm button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("page-request-confirmed")),
	)
	open, err := s.app.Requests().Queue(t.Context(), requests.Filter{State: requests.Received})
	if err != nil {
		t.Fatal(err)
	}
	var req requests.Request
	for _, r := range open {
		if r.Right == requests.Inquiry {
			req = r
		}
	}
	if req.ID == "" {
		t.Fatalf("the confirmed inquiry is not in the queue: %+v", open)
	}

	staffID := s.signUp(t, s.client(), staff, "Grace Hopper", staffPW)
	if err := apptest.GrantStaff(t.Context(), s.app, staffID, "dpo"); err != nil {
		t.Fatal(err)
	}
	d := s.tab(t, root)
	d.staffLogin(staff, staffPW, staffID)
	d.do("open the queue",
		chromedp.Navigate(d.base+"/staff/requests"),
		chromedp.WaitVisible(chromedp.ID("page-staff-requests")),
		chromedp.Click(chromedp.CSS(`a[href="/staff/requests/`+req.ID+`"]`)),
		chromedp.WaitVisible(chromedp.ID("page-staff-request")),
	)
	if got := d.text("the request", "#page-staff-request"); !strings.Contains(got, visitorDetails) || !strings.Contains(got, "Vera Visitor") {
		t.Fatalf("the DPO's page of the request reads %q, want its details and the requester", got)
	}
	d.do("extend",
		chromedp.SetValue(chromedp.ID("f-months"), "1"),
		chromedp.SendKeys(chromedp.ID("f-reason"), extension),
		chromedp.Click(chromedp.CSS(`#extend button[type="submit"]`)),
	)
	d.until("extend", "extended")
	if got := s.find(visitor, regexp.MustCompile(regexp.QuoteMeta(extension))); !strings.Contains(got, extension) {
		t.Errorf("the requester's mail reads %q, want the reason of the extension", got)
	}
	d.do("answer",
		chromedp.SetValue(chromedp.ID("f-state"), requests.Done),
		chromedp.SendKeys(chromedp.ID("f-note"), answer),
		chromedp.Click(chromedp.CSS(`#change button[type="submit"]`)),
	)
	d.until("answer", "done=changed")
	got, _, err := s.app.Requests().Get(t.Context(), req.ID)
	if err != nil || got.State != requests.Done || got.ExtendedMonths != 1 || got.DueDate != requests.DueDate(got.ReceivedAt, 1) {
		t.Fatalf("after the DPO's work the request is %+v, %v; want done, extended by a month", got, err)
	}

	// A copy of what is held under a member's address, asked without logging in and
	// with an identity document: the DPO checks the identity and fulfils it, and the
	// requester downloads the copy once by the mailed link.
	const notify = "ada.notify@example.com"
	doc := filepath.Join(t.TempDir(), "passport.png")
	if err := os.WriteFile(doc, append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), make([]byte, 64)...), 0o600); err != nil {
		t.Fatal(err)
	}
	a := s.tab(t, root)
	a.do("ask for a copy with an identity document",
		chromedp.Navigate(a.base+"/requests/new"),
		chromedp.WaitVisible(chromedp.ID("page-request-new")),
		chromedp.SendKeys(chromedp.ID("f-name"), "Ada Lovelace"),
		chromedp.SendKeys(chromedp.ID("f-email"), notify),
		chromedp.SendKeys(chromedp.ID("f-held_email"), "ada@example.com"),
		chromedp.SetValue(chromedp.ID("f-right"), requests.Access),
		chromedp.SetUploadFiles(chromedp.ID("f-document"), []string{doc}),
		chromedp.Click(chromedp.CSS(`#page-request-new button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("page-request-sent")),
	)
	a.do("confirm the address",
		chromedp.Navigate(a.base+s.link(notify, "/requests/confirm")),
		chromedp.WaitVisible(chromedp.ID("page-request-confirm")),
		chromedp.Click(chromedp.CSS(`#page-request-confirm button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("page-request-confirmed")),
	)
	open, err = s.app.Requests().Queue(t.Context(), requests.Filter{State: requests.Received})
	if err != nil {
		t.Fatal(err)
	}
	req = requests.Request{}
	for _, r := range open {
		if r.Right == requests.Access {
			req = r
		}
	}
	if req.ID == "" {
		t.Fatalf("the confirmed access request is not in the queue: %+v", open)
	}
	d.do("check the identity",
		chromedp.Navigate(d.base+"/staff/requests/"+req.ID),
		chromedp.WaitVisible(chromedp.ID("page-staff-request")),
		chromedp.Click(chromedp.CSS(`#identity button[value="verified"]`)),
	)
	d.until("check the identity", "done=")
	if status, ctype := d.fetch("/staff/requests/" + req.ID + "/document"); status != http.StatusOK || ctype != "image/png" {
		t.Errorf("the DPO's view of the document answered %d %q, want 200 image/png", status, ctype)
	}
	d.do("fulfil",
		chromedp.SetValue(chromedp.ID("f-state"), requests.Done),
		chromedp.Click(chromedp.CSS(`#change button[type="submit"]`)),
	)
	d.until("fulfil", "done=changed")
	a.do("open the download link",
		chromedp.Navigate(a.base+s.link(notify, "/requests/download")),
		chromedp.WaitVisible(chromedp.ID("page-request-download")),
	)
	if status, ctype := a.submit(`form[action="/requests/download"]`); status != http.StatusOK || ctype != "application/zip" {
		t.Fatalf("the download answered %d %q, want 200 application/zip", status, ctype)
	}
	if status, _ := a.submit(`form[action="/requests/download"]`); status == http.StatusOK {
		t.Error("the download link worked twice")
	}

	// A member's correction, made by the DPO on the request's page.
	rectID := s.signUp(t, s.client(), "byron@example.com", "Ada Byron", "poetical science 1843")
	if _, _, err := s.app.Requests().Submit(t.Context(), requests.Submission{SubjectID: rectID, Right: requests.Rectification,
		Details: "My name is Ada Lovelace since 1835."}); err != nil {
		t.Fatal(err)
	}
	list, err := s.app.Requests().List(t.Context(), rectID)
	if err != nil || len(list) != 1 {
		t.Fatalf("the member's requests: %+v, %v", list, err)
	}
	d.do("correct the name",
		chromedp.Navigate(d.base+"/staff/requests/"+list[0].ID),
		chromedp.WaitVisible(chromedp.ID("correct")),
		chromedp.SendKeys(chromedp.ID("f-c_name"), "Ada Lovelace"),
		chromedp.Click(chromedp.CSS(`#correct button[type="submit"]`)),
	)
	d.until("correct the name", "done=corrected")
	if p, err := s.app.Accounts().Profile(t.Context(), rectID); err != nil || p.Name != "Ada Lovelace" {
		t.Fatalf("after the DPO's correction the name is %q (%v)", p.Name, err)
	}
	if got := d.text("the request", "#page-staff-request"); !strings.Contains(got, "Data corrected") {
		t.Errorf("the request's page reads %q, want the correction in its history", got)
	}
}

func guardianRights(t *testing.T, s *site, root context.Context) {
	const (
		child, childPW       = "kid@example.com", "treehouse secret 42"
		guardian, guardianPW = "parent@example.com", "rooftop garden 2026"
	)
	c := s.client()
	form := registration(child, "Young Coder", childPW)
	form.Set("birthdate", time.Now().AddDate(-12, 0, 0).Format("2006-01-02"))
	form.Set("guardian_email", guardian)
	c.post("/register", form).wantRedirect(t, "register a child", "/register/sent?guardian=1")
	c.post("/verify", url.Values{"token": {strings.TrimPrefix(s.link(child, "/verify"), "/verify?token=")}})
	s.signUp(t, s.client(), guardian, "Pat Parent", guardianPW)

	g := s.tab(t, root)
	g.do("agree to the child's account",
		chromedp.Navigate(g.base+s.link(guardian, "/guardian")),
		chromedp.WaitVisible(chromedp.ID("page-guardian")),
		chromedp.Click(chromedp.CSS(`#page-guardian button[value="agree"]`)),
		chromedp.WaitVisible(chromedp.ID("page-guardian-done")),
	)
	g.login(guardian, guardianPW)
	g.do("open the child's account",
		chromedp.Navigate(g.base+"/account/children"),
		chromedp.WaitVisible(chromedp.ID("page-children")),
		chromedp.Click(chromedp.CSS(`#page-children a[href^="/account/children/"]`)),
		chromedp.WaitVisible(chromedp.ID("page-child")),
	)
	if got := g.text("child", "#page-child"); !strings.Contains(got, child) || !strings.Contains(got, "Young Coder") {
		t.Fatalf("the guardian's page of the child reads %q", got)
	}
	childPath, err := chromedp.Run(g.ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(childPath)
	childID := strings.TrimPrefix(u.Path, "/account/children/")
	if status, ctype := g.fetch(u.Path + "/export"); status != http.StatusOK || ctype != "application/zip" {
		t.Errorf("the guardian's download of the child's data answered %d %q, want 200 application/zip", status, ctype)
	}
	g.do("stop the use of the child's data",
		chromedp.Click(chromedp.ID("f-restricted")),
		chromedp.Click(chromedp.CSS(`#page-child form[action$="/preferences"] button[type="submit"]`)),
	)
	g.until("stop the use of the child's data", "saved=1")
	if f, err := s.app.Consent().Flags(t.Context(), childID); err != nil || !f.Restricted {
		t.Fatalf("after the guardian stopped the use, the child's flags are %+v, %v", f, err)
	}
	g.do("erase the child's account",
		chromedp.Click(chromedp.CSS(`#page-child details summary`)),
		chromedp.SendKeys(chromedp.CSS(`#page-child form[action$="/delete"] input[type="password"]`), guardianPW),
		chromedp.Click(chromedp.CSS(`#page-child form[action$="/delete"] button[type="submit"]`)),
	)
	g.until("erase the child's account", "/erasures/")
	// The erasure runs as a job: wait for it to take the account.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := s.app.Accounts().Profile(t.Context(), childID); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the child's account is still there 10 s after the guardian erased it")
		}
	}
}

// heldErasure: the DPO places a legal hold on a member's requests; the member is told
// before deleting the account and on the erasure's page what is kept and why; the DPO
// releases the hold and the erasure completes.
func heldErasure(t *testing.T, s *site, root context.Context) {
	const (
		email, password = "held@example.com", "kept for a while 2026"
		dpo, dpoPW      = "holder@example.com", "quiet archive 1984"
		reason          = "Court order 4 O 123/26"
	)
	id := s.signUp(t, s.client(), email, "Hal Held", password)
	m := s.tab(t, root)
	m.login(email, password)
	m.do("ask something",
		chromedp.Navigate(m.base+"/account/requests"),
		chromedp.WaitVisible(chromedp.ID("page-requests")),
		chromedp.SetValue(chromedp.ID("f-right"), requests.Inquiry),
		chromedp.SendKeys(chromedp.ID("f-details"), "What do you keep about me?"),
		chromedp.Click(chromedp.CSS(`#ask button[type="submit"]`)),
	)
	m.until("ask something", "notice=sent")

	dpoID := s.signUp(t, s.client(), dpo, "Dana Officer", dpoPW)
	if err := apptest.GrantStaff(t.Context(), s.app, dpoID, "dpo"); err != nil {
		t.Fatal(err)
	}
	d := s.tab(t, root)
	d.staffLogin(dpo, dpoPW, dpoID)
	d.do("place a hold",
		chromedp.Navigate(d.base+"/staff/holds"),
		chromedp.WaitVisible(chromedp.ID("page-staff-holds")),
		chromedp.SendKeys(chromedp.ID("f-subject"), email),
		chromedp.SendKeys(chromedp.ID("f-reason"), reason),
		chromedp.Click(chromedp.CSS(`#place input[name="holders"][value="requests"]`)),
		chromedp.Click(chromedp.CSS(`#place button[type="submit"]`)),
	)
	d.until("place a hold", "done=placed")
	if got := d.text("holds", "#holds"); !strings.Contains(got, reason) {
		t.Fatalf("the holds list reads %q, want the hold's reason", got)
	}

	m.do("open the delete page", chromedp.Navigate(m.base+"/account/delete"), chromedp.WaitVisible(chromedp.ID("page-delete")))
	if got := m.text("delete page", "#page-delete"); !strings.Contains(got, reason) {
		t.Fatalf("the delete page reads %q, want the hold's reason before deleting", got)
	}
	m.do("delete the account",
		chromedp.SendKeys(chromedp.ID("f-password"), password),
		chromedp.Click(chromedp.CSS(`#page-delete form button[type="submit"]`)),
	)
	m.until("delete the account", "/erasures/")
	var page string
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		m.do("reload the erasure's page", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("page-erasure")))
		if page = m.text("erasure page", "#page-erasure"); strings.Contains(page, "except what a legal hold keeps") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the erasure's page reads %q, want what the hold keeps", page)
		}
	}
	if !strings.Contains(page, reason) {
		t.Errorf("the erasure's page reads %q, want the hold's reason", page)
	}

	d.do("release the hold",
		chromedp.Navigate(d.base+"/staff/holds"),
		chromedp.WaitVisible(chromedp.ID("page-staff-holds")),
		chromedp.Click(chromedp.CSS(`#holds a[href$="/release"]`)),
		chromedp.WaitVisible(chromedp.ID("page-staff-hold-release")),
		chromedp.Click(chromedp.CSS(`#page-staff-hold-release button[type="submit"]`)),
	)
	d.until("release the hold", "done=released")
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		m.do("reload the erasure's page", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("page-erasure")))
		if page = m.text("erasure page", "#page-erasure"); strings.Contains(page, "Everything we held about you has been erased") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the release the erasure's page still reads %q", page)
		}
	}
	if list, err := s.app.Requests().List(t.Context(), id); err != nil || len(list) != 0 {
		t.Errorf("after the release the member's requests are %+v, %v; want none", list, err)
	}
}
