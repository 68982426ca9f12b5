package web_test

import (
	"bytes"
	"fmt"
	"html"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"testing"
	"time"

	"steward/internal/app/apptest"
	"steward/internal/requests"
	"steward/internal/store/storetest"
)

// The privacy center and the DPO's queue through the pages, on every engine: a member
// asks, sees the due date, withdraws; a dpo works a request, extends one, and a
// member without the role is refused.
func TestRequestPages(t *testing.T) {
	t.Parallel()
	for dialect, dbURL := range storetest.Engines(t) {
		t.Run(string(dialect), func(t *testing.T) {
			t.Parallel()
			s := start(t, dbURL, "--dpo-contact", "Jane Roe, dpo@example.com", "--supervisory-authority", "The Commissioner")
			c := s.client()
			memberID := s.signUp(t, c, "asker@example.com", "Ada Asker", "analytical engine 1843")
			c.get("/account/requests").want(t, "privacy center", http.StatusOK, "Jane Roe, dpo@example.com", "The Commissioner",
				`href="/account/export"`, `href="/account/preferences"`, `href="/account/delete"`, "You have made no requests.")

			c.post("/account/requests", url.Values{"right": {"complaint"}}).want(t, "no details", http.StatusBadRequest,
				`aria-invalid="true"`, "Details is required")
			c.post("/account/requests", url.Values{"right": {"erasure"}, "details": {"x"}}).want(t, "a right the form does not offer",
				http.StatusBadRequest, "Request must be one of")
			c.post("/account/requests", url.Values{"right": {"complaint"}, "details": {"You kept mailing me"}}).
				wantRedirect(t, "complaint", "/account/requests?notice=sent")
			c.post("/account/requests", url.Values{"right": {"complaint"}, "details": {"You kept mailing me"}}).
				wantRedirect(t, "the same again", "/account/requests?notice=same")
			due := requests.DueDate(time.Now(), 0).Long()
			page := c.get("/account/requests?notice=sent")
			page.want(t, "history", http.StatusOK, "Your request is sent.", ">Complaint</a>", "due "+due, "You kept mailing me", "Withdraw this request")
			c.post("/account/requests", url.Values{"right": {"access"}}).wantRedirect(t, "access", "/account/requests?notice=access")

			list, err := s.app.Requests().List(t.Context(), memberID)
			if err != nil || len(list) != 2 {
				t.Fatalf("requests = %v, %v", list, err)
			}
			var complaint string
			for _, r := range list {
				if r.Right == requests.Complaint {
					complaint = r.ID
				}
			}

			// The queue: a member without the dpo role is refused; the dpo works it.
			st := s.client()
			dpoID := s.signUp(t, st, "dpo@example.com", "Dana Officer", "privacy by design 2018")
			st.get("/staff/requests").want(t, "queue without the role", http.StatusForbidden, "dpo role")
			if err := apptest.GrantStaff(t.Context(), s.app, dpoID, "dpo"); err != nil {
				t.Fatal(err)
			}
			st.get("/account").want(t, "the staff link of a dpo", http.StatusOK, `<a href="/staff">Staff</a>`)
			st.get("/staff").wantRedirect(t, "the staff home of a dpo", "/staff/requests")
			st.get("/staff/requests").want(t, "queue", http.StatusOK, "/staff/requests/"+complaint, "received")
			st.get("/staff/requests?state=done").want(t, "done only", http.StatusOK, "Access to your data")
			st.get("/staff/requests?due_before=soon").want(t, "a bad date", http.StatusBadRequest, "must be a date")
			st.get("/staff/requests/no-such").want(t, "unknown request", http.StatusNotFound)
			st.get("/staff/requests/"+complaint).want(t, "request", http.StatusOK, "You kept mailing me", "Change the state", "Extend the due date")
			st.post("/staff/requests/"+complaint+"/state", url.Values{"state": {"refused"}}).want(t, "refusal without reasons",
				http.StatusBadRequest, "Note is required")
			st.post("/staff/requests/"+complaint+"/extend", url.Values{"months": {"3"}, "reason": {"busy"}}).want(t, "three months",
				http.StatusBadRequest, "must be 1 or 2")
			st.post("/staff/requests/"+complaint+"/extend", url.Values{"months": {"1"}, "reason": {"Many requests this month"}}).
				wantRedirect(t, "extend", "/staff/requests/"+complaint+"?done=extended")
			st.post("/staff/requests/"+complaint+"/state", url.Values{"state": {"in_progress"}, "note": {"Looking at the logs"}}).
				wantRedirect(t, "in progress", "/staff/requests/"+complaint+"?done=changed")
			st.get("/staff/requests/"+complaint).want(t, "history", http.StatusOK, "Many requests this month", "Looking at the logs",
				html.EscapeString("Received → in progress"), requests.DueDate(time.Now(), 1).Long())
			c.get("/account/requests").want(t, "member sees the extension", http.StatusOK, "extended by 1 month", "in progress")
			c.get("/account/requests/"+complaint).want(t, "member sees the history", http.StatusOK, "Many requests this month",
				"Looking at the logs", "by our staff", "You kept mailing me")
			o0 := s.client()
			s.signUp(t, o0, "nosy@example.com", "Nosy Parker", "curiosity killed 1900")
			o0.get("/account/requests/"+complaint).want(t, "another member's request", http.StatusNotFound)

			// The member withdraws it; another member cannot.
			o := s.client()
			s.signUp(t, o, "other@example.com", "Otto Other", "difference engine 1822")
			o.post("/account/requests/"+complaint+"/withdraw", nil).want(t, "another member withdraws", http.StatusNotFound)
			c.post("/account/requests/"+complaint+"/withdraw", nil).wantRedirect(t, "withdraw", "/account/requests?notice=withdrawn")
			if p := c.get("/account/requests"); !strings.Contains(p.body, "withdrawn") || strings.Contains(p.body, "Withdraw this request") {
				t.Errorf("after withdrawing, the page:\n%s", p.body)
			}
			st.get("/staff/requests/"+complaint).want(t, "closed", http.StatusOK, "withdrawn")
			if p := st.get("/staff/requests/" + complaint); strings.Contains(p.body, "Change the state") {
				t.Error("a closed request still offers a change of state")
			}
		})
	}
}

// A request without logging in through the pages: the form, the mailed link, a button
// (opening the link changes nothing), and a used link refused.
func TestVisitorRequestPages(t *testing.T) {
	t.Parallel()
	for dialect, dbURL := range storetest.Engines(t) {
		t.Run(string(dialect), func(t *testing.T) {
			t.Parallel()
			s := start(t, dbURL)
			c := s.client()
			c.get("/requests/new").want(t, "form", http.StatusOK, `name="name"`, `name="email"`, `name="held_email"`, `value="portability"`)
			c.post("/requests/new", url.Values{"email": {"vera@example.com"}, "right": {"access"}}).want(t, "no name",
				http.StatusBadRequest, "Full name is required")
			c.post("/requests/new", url.Values{"name": {"Vera Visitor"}, "email": {"vera@example.com"}, "right": {"complaint"}}).
				want(t, "a complaint without details", http.StatusBadRequest, "Details is required")
			p := c.post("/requests/new", url.Values{"name": {"Vera Visitor"}, "email": {"vera@example.com"}, "right": {"inquiry"},
				"details": {"Do you hold anything about me?"}})
			p.wantRedirect(t, "sent", "/requests/sent")
			c.get("/requests/sent").want(t, "sent page", http.StatusOK, "Check your mailbox")
			link := s.link("vera@example.com", "/requests/confirm")
			token := strings.TrimPrefix(link, "/requests/confirm?token=")
			c.get(link).want(t, "confirm page", http.StatusOK, "Confirm my request")
			if q, err := s.app.Requests().Queue(t.Context(), requests.Filter{State: requests.Unconfirmed}); err != nil || len(q) != 1 {
				t.Fatalf("opening the link changed something: %v, %v", q, err)
			}
			c.get("/requests/confirm").want(t, "no token", http.StatusBadRequest, "This link is incomplete")
			c.post("/requests/confirm", url.Values{"token": {token}}).wantRedirect(t, "confirm", "/requests/confirmed")
			c.get("/requests/confirmed").want(t, "confirmed", http.StatusOK, "Your request is received")
			c.post("/requests/confirm", url.Values{"token": {token}}).want(t, "used link", http.StatusBadRequest, "invalid, used or expired")
			q, err := s.app.Requests().Queue(t.Context(), requests.Filter{State: requests.Received})
			if err != nil || len(q) != 1 {
				t.Fatalf("received = %+v, %v", q, err)
			}
			if got, _, err := s.app.Requests().Get(t.Context(), q[0].ID); err != nil || got.RequesterName != "Vera Visitor" || got.HeldEmail != "vera@example.com" {
				t.Errorf("the request = %+v, %v", got, err)
			}
		})
	}
}

// visitorForm is the multipart form of a request without a login, with a document.
func visitorForm(fields url.Values, name, ctype string, content []byte) (io.Reader, http.Header) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, vs := range fields {
		for _, v := range vs {
			_ = mw.WriteField(k, v)
		}
	}
	hdr := textproto.MIMEHeader{}
	hdr.Set("Content-Disposition", `form-data; name="document"; filename="`+name+`"`)
	hdr.Set("Content-Type", ctype)
	pw, _ := mw.CreatePart(hdr)
	_, _ = pw.Write(content)
	_ = mw.Close()
	return &body, http.Header{"Content-Type": {mw.FormDataContentType()}}
}

// An identity document through the pages: the form takes a file, a file whose content
// lies about its type is refused beside the field, the dpo opens the document and
// verifies the identity, and the access request is answered with a one-time download
// page: a button, the archive once, then a clear "used".
func TestVisitorDocumentPages(t *testing.T) {
	t.Parallel()
	for dialect, dbURL := range storetest.Engines(t) {
		t.Run(string(dialect), func(t *testing.T) {
			t.Parallel()
			s := start(t, dbURL)
			m := s.client()
			s.signUp(t, m, "held@example.com", "Hedda Held", "quiet harbour 2026 lamp")
			st := s.client()
			staffID := s.signUp(t, st, "dpo@example.com", "Dora Dpo", "ledger of lanterns 77")
			if err := apptest.GrantStaff(t.Context(), s.app, staffID, "dpo"); err != nil {
				t.Fatal(err)
			}
			c := s.client()
			c.get("/requests/new").want(t, "form", http.StatusOK, `enctype="multipart/form-data"`, `name="document"`, `type="file"`, `accept=".pdf`)
			fields := url.Values{"name": {"Vera Visitor"}, "email": {"vera@example.com"}, "held_email": {"held@example.com"}, "right": {"access"}}
			pdf := []byte("%PDF-1.4\nan identity card\n%%EOF\n")
			body, hdr := visitorForm(fields, "passport.png", "image/png", pdf)
			c.send(http.MethodPost, "/requests/new", body, hdr).want(t, "a PDF named .png", http.StatusBadRequest,
				"Please correct the field marked below", "Copy of an identity document is named .png but its content is a PDF file", `value="Vera Visitor"`)
			body, hdr = visitorForm(fields, "notes.pdf", "application/pdf", []byte("plain text"))
			c.send(http.MethodPost, "/requests/new", body, hdr).want(t, "text as a PDF", http.StatusBadRequest,
				"Copy of an identity document must be a PDF, JPEG or PNG file")
			if q, err := s.app.Requests().Queue(t.Context(), requests.Filter{}); err != nil || len(q) != 0 {
				t.Fatalf("refused forms recorded %v (%v)", q, err)
			}
			body, hdr = visitorForm(fields, "passport.pdf", "application/pdf", pdf)
			c.send(http.MethodPost, "/requests/new", body, hdr).wantRedirect(t, "sent", "/requests/sent")
			token := strings.TrimPrefix(s.link("vera@example.com", "/requests/confirm"), "/requests/confirm?token=")
			c.post("/requests/confirm", url.Values{"token": {token}}).wantRedirect(t, "confirm", "/requests/confirmed")
			q, err := s.app.Requests().Queue(t.Context(), requests.Filter{State: requests.Received})
			if err != nil || len(q) != 1 {
				t.Fatalf("received = %v (%v)", q, err)
			}
			id := q[0].ID

			st.get("/staff/requests/"+id).want(t, "staff page", http.StatusOK, "Identity document", "/staff/requests/"+id+"/document",
				"PDF, ", "Check the identity", `value="verified"`)
			d := st.get("/staff/requests/" + id + "/document")
			d.want(t, "document", http.StatusOK)
			if d.body != string(pdf) || !strings.HasPrefix(d.header.Get("Content-Disposition"), "attachment") ||
				!strings.Contains(d.header.Get("Content-Security-Policy"), "sandbox") {
				t.Errorf("document = %q %v", d.body, d.header)
			}
			st.post("/staff/requests/"+id+"/identity", url.Values{"decision": {"maybe"}}).want(t, "no decision", http.StatusBadRequest, "verified or refused")
			st.post("/staff/requests/"+id+"/identity", url.Values{"decision": {"verified"}, "id_note": {"Passport matches"}}).
				wantRedirect(t, "verified", "/staff/requests/"+id+"?done=verified")
			st.get("/staff/requests/"+id).want(t, "verified page", http.StatusOK, "Identity verified", "Identity document viewed")
			st.post("/staff/requests/"+id+"/state", url.Values{"state": {"done"}}).wantRedirect(t, "done", "/staff/requests/"+id+"?done=changed")

			link := s.link("vera@example.com", "/requests/download")
			c.get(link).want(t, "download page", http.StatusOK, "Download my data")
			c.get("/requests/download?token=bogus").want(t, "bogus", http.StatusBadRequest, "This download link is invalid")
			dl := strings.TrimPrefix(link, "/requests/download?token=")
			z := c.post("/requests/download", url.Values{"token": {dl}})
			if z.status != http.StatusOK || z.header.Get("Content-Type") != "application/zip" {
				t.Fatalf("download = %d %v", z.status, z.header)
			}
			c.post("/requests/download", url.Values{"token": {dl}}).want(t, "used", http.StatusConflict, "was used already")
			c.get(link).want(t, "used link page", http.StatusConflict, "was used already", "make a new request")
		})
	}
}

// The DPO's queue pages on the server: 60 open requests show as 50 and 10, with
// "Showing 1–50 of 60", the filters kept in the links; the API pages with offset and
// says the total.
func TestRequestQueuePages(t *testing.T) {
	t.Parallel()
	for dialect, dbURL := range storetest.Engines(t) {
		t.Run(string(dialect), func(t *testing.T) {
			t.Parallel()
			s := start(t, dbURL)
			memberID := s.signUp(t, s.client(), "many@example.com", "Mona Many", "a long list 2026")
			for i := range 60 {
				if _, _, err := s.app.Requests().Submit(t.Context(), requests.Submission{SubjectID: memberID, Right: requests.Inquiry,
					Details: fmt.Sprintf("Question number %d", i)}); err != nil {
					t.Fatal(err)
				}
			}
			st := s.client()
			staffID := s.signUp(t, st, "desk@example.com", "Desk Officer", "quiet archive 1984")
			if err := apptest.GrantStaff(t.Context(), s.app, staffID, "dpo"); err != nil {
				t.Fatal(err)
			}
			p := st.get("/staff/requests?state=open")
			p.want(t, "first page", http.StatusOK, "Showing 1–50 of 60", "page=2")
			if n := strings.Count(p.body, `href="/staff/requests/`); n != 50 {
				t.Errorf("the first page links %d requests, want 50", n)
			}
			p = st.get("/staff/requests?state=open&page=2")
			p.want(t, "second page", http.StatusOK, "Showing 51–60 of 60")
			if n := strings.Count(p.body, `href="/staff/requests/`); n != 10 {
				t.Errorf("the second page links %d requests, want 10", n)
			}
			if !strings.Contains(p.body, "state=open") {
				t.Error("the pagination's links drop the state filter")
			}
		})
	}
}
