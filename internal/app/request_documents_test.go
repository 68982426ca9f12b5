package app_test

import (
	"archive/zip"
	"bytes"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"steward/internal/app/apptest"
	"steward/internal/blob"
	"steward/internal/datamap/residuetest"
	"steward/internal/requests"
)

// doc is an identity document sent with a visitor's request.
type doc struct {
	name, ctype string
	body        []byte
}

// pdfDoc is a small PDF with a marker that must never be stored in plain text.
var pdfDoc = []byte("%PDF-1.7\n% IDENTITY-CARD-OF-VERA-VISITOR\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n")

// pngDoc starts as a PNG does.
var pngDoc = append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{0}, 64)...)

// sendVisitor posts a visitor's request as multipart, with the document if any.
func sendVisitor(h *apptest.Harness, fields map[string]string, d *doc) apptest.Response {
	h.T.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		_ = mw.WriteField(k, v)
	}
	if d != nil {
		hdr := textproto.MIMEHeader{}
		hdr.Set("Content-Disposition", `form-data; name="document"; filename="`+d.name+`"`)
		if d.ctype != "" {
			hdr.Set("Content-Type", d.ctype)
		}
		pw, _ := mw.CreatePart(hdr)
		_, _ = pw.Write(d.body)
	}
	_ = mw.Close()
	req, _ := http.NewRequest("POST", h.URL+"/api/v1/requests", &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := h.Client.Do(req)
	if err != nil {
		h.T.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return apptest.Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// objects lists the blob store's request documents.
func objects(t *testing.T, h *apptest.Harness) []string {
	t.Helper()
	var out []string
	if err := h.App.Blobs().List(t.Context(), "requests/", func(i blob.Info) error {
		out = append(out, i.Name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// A copy of an identity document sent with a request made without logging in: checked
// by its content (a wrong type, a lying name or type, a file too large refused with
// the field named and nothing stored), the same answer whoever the address is, sealed
// under the request's own key, opened by the dpo with the opening recorded, and gone
// when the request closes; staff verify the identity or refuse it.
func TestVisitorIdentityDocument(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := t.Context()
		h.Member("doc.member@example.org", "correct horse battery", nil)
		dpoID, dpoToken := h.Member("doc.dpo@example.org", "correct horse battery", nil)
		if err := h.GrantStaff(ctx, dpoID, "dpo"); err != nil {
			t.Fatal(err)
		}
		_, otherToken := h.Member("doc.support@example.org", "correct horse battery", nil)
		fields := func(notify, held string) map[string]string {
			return map[string]string{"name": "Vera Visitor", "email": notify, "held_email": held, "right": "access"}
		}
		max := h.App.Requests().MaxDocument()
		for _, c := range []struct {
			name   string
			d      doc
			status int
			code   string
		}{
			{"text as a PDF", doc{"id.pdf", "application/pdf", []byte("just some text, not a PDF")}, 400, "document_type"},
			{"an executable", doc{"id.png", "image/png", []byte("MZ\x90\x00 an exe")}, 400, "document_type"},
			{"a PNG named .pdf", doc{"id.pdf", "", pngDoc}, 400, "document_mismatch"},
			{"a PDF sent as image/png", doc{"id", "image/png", pdfDoc}, 400, "document_mismatch"},
			{"a PDF named .exe", doc{"id.exe", "application/pdf", pdfDoc}, 400, "document_mismatch"},
			{"an empty file", doc{"id.pdf", "application/pdf", nil}, 400, "document_empty"},
			{"too large", doc{"id.pdf", "application/pdf", append(append([]byte{}, pdfDoc...), make([]byte, max)...)}, 413, "document_too_large"},
		} {
			r := sendVisitor(h, fields("bad.notify@example.org", "doc.member@example.org"), &c.d)
			if f, code := r.ErrorField(); r.Status != c.status || f != "document" || code != c.code {
				t.Errorf("%s = %d %s, want %d on document (%s)", c.name, r.Status, r.Body, c.status, c.code)
			}
		}
		var rows int
		if err := h.App.DB().QueryRowContext(ctx, `SELECT count(*) FROM privacy_requests`).Scan(&rows); err != nil || rows != 0 {
			t.Errorf("%d requests recorded from refused documents (%v), want none", rows, err)
		}
		if objs := objects(t, h); len(objs) != 0 {
			t.Errorf("objects stored from refused documents: %v", objs)
		}
		if n := len(h.Mails("bad.notify@example.org")); n != 0 {
			t.Errorf("%d mails for refused requests", n)
		}

		// The same answer for a known and an unknown address, with and without a document.
		known := sendVisitor(h, fields("vera.notify@example.org", "doc.member@example.org"), &doc{"My ID.PDF", "application/pdf", pdfDoc})
		unknown := sendVisitor(h, fields("uwe.notify@example.org", "nobody.here@example.org"), &doc{"scan.png", "image/png", pngDoc})
		plain := h.Do("POST", "/api/v1/requests", map[string]any{"name": "Nina", "email": "nina.notify@example.org", "right": "access"}, "")
		if known.Status != 202 || string(known.Body) != string(unknown.Body) || string(known.Body) != string(plain.Body) {
			t.Errorf("answers differ: %d %s / %d %s / %d %s", known.Status, known.Body, unknown.Status, unknown.Body, plain.Status, plain.Body)
		}
		objs := objects(t, h)
		if len(objs) != 2 {
			t.Fatalf("objects = %v, want the two documents", objs)
		}
		for _, o := range objs {
			rc, err := h.App.Blobs().Open(ctx, o, 0, -1)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(rc)
			rc.Close()
			if bytes.Contains(raw, []byte("IDENTITY-CARD")) || bytes.HasPrefix(raw, []byte("%PDF")) || bytes.HasPrefix(raw, []byte("\x89PNG")) {
				t.Errorf("object %s holds the document in plain text", o)
			}
		}

		// An unconfirmed request's document goes with it once its link expires.
		h.WaitLink("uwe.notify@example.org", "/requests/confirm?token=")
		link := h.WaitLink("vera.notify@example.org", "/requests/confirm?token=")
		c := h.Do("POST", "/api/v1/requests/confirm", map[string]string{"token": link}, "")
		if c.Status != 200 {
			t.Fatalf("confirm = %d %s", c.Status, c.Body)
		}
		id := c.JSON()["id"].(string)
		// An object no request names (a submission that crashed before its row
		// committed) goes too.
		if _, err := h.App.Blobs().Put(ctx, "requests/orphan", bytes.NewReader([]byte("ciphertext")), 10); err != nil {
			t.Fatal(err)
		}
		h.Clock.Advance(requests.ConfirmTTL + time.Minute)
		h.KeepStaff(ctx, dpoID)                                            // a staff session idle that long has ended: they gave a code again
		if d, _, err := h.App.Requests().Tidy(ctx); err != nil || d != 2 { // Uwe's and Nina's
			t.Errorf("Tidy deleted %d (%v), want 2", d, err)
		}
		if objs := objects(t, h); len(objs) != 1 {
			t.Errorf("objects after the unconfirmed request and the orphan went: %v, want Vera's", objs)
		}

		// Staff see that a document is held, and open it: an attachment never rendered,
		// the opening an event of the request and an entry of the audit log. Others
		// cannot open it.
		got := jsonOK(t, h.Do("GET", "/api/v1/staff/requests/"+id, nil, dpoToken))
		dm, _ := got["document"].(map[string]any)
		if dm["content_type"] != "application/pdf" || dm["size"] != float64(len(pdfDoc)) {
			t.Errorf("staff view of the document = %v", got["document"])
		}
		if r := h.Do("GET", "/api/v1/staff/requests/"+id+"/document", nil, otherToken); r.Status != 403 {
			t.Errorf("a member without the dpo role = %d", r.Status)
		}
		r := h.Do("GET", "/api/v1/staff/requests/"+id+"/document", nil, dpoToken)
		if r.Status != 200 || !bytes.Equal(r.Body, pdfDoc) {
			t.Fatalf("document = %d %q", r.Status, r.Body)
		}
		if cd := r.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment;") || !strings.Contains(cd, ".pdf") {
			t.Errorf("Content-Disposition = %q", cd)
		}
		if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "sandbox") || !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("CSP = %q", csp)
		}
		if r.Header.Get("X-Content-Type-Options") != "nosniff" || r.Header.Get("Content-Type") != "application/pdf" {
			t.Errorf("headers = %v", r.Header)
		}
		if !hasEvent(jsonOK(t, h.Do("GET", "/api/v1/staff/requests/"+id, nil, dpoToken)), requests.ActionDocument) {
			t.Error("the opening of the document is not an event of the request")
		}
		audit, err := h.App.Audit().ForAccount(ctx, h.App.DB(), dpoID, 50)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, e := range audit {
			found = found || (e.Event == "privacy_request_document_viewed" && strings.Contains(e.Detail, id))
		}
		if !found {
			t.Errorf("no audit entry of the document opened: %v", audit)
		}

		// Fulfilling before the identity is verified is refused; a refusal needs its reason.
		if r := h.Do("POST", "/api/v1/staff/requests/"+id+"/state", map[string]any{"state": "done"}, dpoToken); r.Status != 409 {
			t.Errorf("done before verification = %d %s", r.Status, r.Body)
		}
		if r := h.Do("POST", "/api/v1/staff/requests/"+id+"/identity", map[string]any{"note": "x"}, dpoToken); r.Status != 400 {
			t.Errorf("no decision = %d %s", r.Status, r.Body)
		}
		if r := h.Do("POST", "/api/v1/staff/requests/"+id+"/identity", map[string]any{"verified": false}, dpoToken); r.Status != 400 {
			t.Errorf("refused without a reason = %d %s", r.Status, r.Body)
		}
		v := h.Do("POST", "/api/v1/staff/requests/"+id+"/identity", map[string]any{"verified": true, "note": "Name and photo match"}, dpoToken)
		if v.Status != 200 || v.JSON()["state"] != "in_progress" || !hasEvent(v.JSON(), requests.ActionIdentity) {
			t.Fatalf("verified = %d %s", v.Status, v.Body)
		}
		if r := h.Do("POST", "/api/v1/staff/requests/"+id+"/identity", map[string]any{"verified": true}, dpoToken); r.Status != 409 {
			t.Errorf("verified twice = %d %s", r.Status, r.Body)
		}

		// Closing the request deletes the document at once.
		if r := h.Do("POST", "/api/v1/staff/requests/"+id+"/state", map[string]any{"state": "done"}, dpoToken); r.Status != 200 {
			t.Fatalf("done = %d %s", r.Status, r.Body)
		}
		if objs := objects(t, h); len(objs) != 0 {
			t.Errorf("objects after the close: %v", objs)
		}
		if r := h.Do("GET", "/api/v1/staff/requests/"+id+"/document", nil, dpoToken); r.Status != 404 {
			t.Errorf("document after the close = %d", r.Status)
		}

		// Refusing an identity closes the request, mails the reason, deletes the document.
		sendVisitor(h, fields("rita.notify@example.org", "doc.member@example.org"), &doc{"id.jpg", "image/jpeg", []byte("\xFF\xD8\xFF\xE0 jpeg")})
		tok := h.WaitLink("rita.notify@example.org", "/requests/confirm?token=")
		rid := h.Do("POST", "/api/v1/requests/confirm", map[string]string{"token": tok}, "").JSON()["id"].(string)
		if r := h.Do("POST", "/api/v1/staff/requests/"+rid+"/identity", map[string]any{"verified": false, "note": "The document is unreadable"},
			dpoToken); r.Status != 200 || r.JSON()["state"] != "refused" {
			t.Errorf("refused = %d %s", r.Status, r.Body)
		}
		mailWith(h, "rita.notify@example.org", "The document is unreadable")
		if objs := objects(t, h); len(objs) != 0 {
			t.Errorf("objects after the refusal: %v", objs)
		}

		// A day on, the keys are shredded; nothing of the visitors is left in plain text.
		dl := h.WaitLink("vera.notify@example.org", "/requests/download?token=")
		if r := h.Do("POST", "/api/v1/requests/download", map[string]string{"token": dl}, ""); r.Status != 200 {
			t.Fatalf("download = %d", r.Status)
		}
		h.Clock.Advance(requests.ShredAfter + time.Minute)
		if _, s, err := h.App.Requests().Tidy(ctx); err != nil || s != 2 {
			t.Errorf("Tidy shredded %d (%v), want 2", s, err)
		}
		if found := residuetest.RawFindings(t, h.App.DB(), "Vera Visitor", "vera.notify", "rita.notify", "IDENTITY-CARD"); len(found) > 0 {
			t.Errorf("a visitor's data on disk in plain text: %v", found)
		}
	})
}

func hasEvent(req map[string]any, action string) bool {
	evs, _ := req["events"].([]any)
	for _, e := range evs {
		if m, _ := e.(map[string]any); m["action"] == action {
			return true
		}
	}
	return false
}

// An access request fulfilled by staff is delivered by a one-time link that expires:
// the export of the member whose proven address the data is held under, never an
// attachment; the link works once, a second use and an expired link are told so, a
// forged token or another link's token finds nothing; with no member under the
// address, the answer says no data is held, and no link is sent.
func TestRequestDownloadLink(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := t.Context()
		memberID, _ := h.Member("held.member@example.org", "correct horse battery", map[string]any{"name": "Hal Held"})
		dpoID, dpoToken := h.Member("dl.dpo@example.org", "correct horse battery", nil)
		if err := h.GrantStaff(ctx, dpoID, "dpo"); err != nil {
			t.Fatal(err)
		}
		// open makes a confirmed, verified visitor's access request.
		open := func(notify, held string) (id, confirm string) {
			t.Helper()
			if r := h.Do("POST", "/api/v1/requests", map[string]any{"name": "Hal", "email": notify, "held_email": held, "right": "portability"},
				""); r.Status != 202 {
				t.Fatalf("submit = %d %s", r.Status, r.Body)
			}
			confirm = h.WaitLink(notify, "/requests/confirm?token=")
			c := h.Do("POST", "/api/v1/requests/confirm", map[string]string{"token": confirm}, "")
			id = c.JSON()["id"].(string)
			if r := h.Do("POST", "/api/v1/staff/requests/"+id+"/identity", map[string]any{"verified": true}, dpoToken); r.Status != 200 {
				t.Fatalf("verify = %d %s", r.Status, r.Body)
			}
			if r := h.Do("POST", "/api/v1/staff/requests/"+id+"/state", map[string]any{"state": "done"}, dpoToken); r.Status != 200 {
				t.Fatalf("done = %d %s", r.Status, r.Body)
			}
			return id, confirm
		}
		id, confirm := open("hal.notify@example.org", "held.member@example.org")
		mail := mailWith(h, "hal.notify@example.org", "/requests/download?token=")
		if strings.Contains(mail, "Content-Disposition") || strings.Contains(mail, "application/zip") {
			t.Errorf("the data is attached to the mail:\n%s", mail)
		}
		token := h.WaitLink("hal.notify@example.org", "/requests/download?token=")
		var stored int
		if err := h.App.DB().QueryRowContext(ctx, `SELECT count(*) FROM privacy_requests WHERE download_hash = $1`, token).Scan(&stored); err != nil ||
			stored != 0 {
			t.Errorf("the token is stored as is (%v)", err)
		}

		for _, c := range []struct {
			name, token string
		}{{"forged", "forged-token-forged-token-forged-token-1234"}, {"empty", ""}, {"the confirmation link's", confirm}} {
			if r := h.Do("POST", "/api/v1/requests/download", map[string]string{"token": c.token}, ""); r.Status != 400 {
				t.Errorf("%s token = %d %s", c.name, r.Status, r.Body)
			} else if _, code := r.ErrorField(); code != "download_invalid" {
				t.Errorf("%s token = %s", c.name, r.Body)
			}
		}
		// The download link is no confirmation link either.
		if r := h.Do("POST", "/api/v1/requests/confirm", map[string]string{"token": token}, ""); r.Status != 400 {
			t.Errorf("the download token as a confirmation = %d", r.Status)
		}

		r := h.Do("POST", "/api/v1/requests/download", map[string]string{"token": token}, "")
		if r.Status != 200 || r.Header.Get("Content-Type") != "application/zip" || !strings.HasPrefix(r.Header.Get("Content-Disposition"), "attachment") {
			t.Fatalf("download = %d %v %s", r.Status, r.Header, r.Body)
		}
		zr, err := zip.NewReader(bytes.NewReader(r.Body), int64(len(r.Body)))
		if err != nil {
			t.Fatal(err)
		}
		var all strings.Builder
		for _, f := range zr.File {
			rc, _ := f.Open()
			b, _ := io.ReadAll(rc)
			rc.Close()
			all.Write(b)
		}
		if !strings.Contains(all.String(), memberID) || !strings.Contains(all.String(), "held.member@example.org") {
			t.Errorf("the archive is not the member's export")
		}
		again := h.Do("POST", "/api/v1/requests/download", map[string]string{"token": token}, "")
		if _, code := again.ErrorField(); again.Status != 409 || code != "download_used" {
			t.Errorf("second use = %d %s", again.Status, again.Body)
		}
		got := jsonOK(t, h.Do("GET", "/api/v1/staff/requests/"+id, nil, dpoToken))
		if got["state"] != "done" || !hasEvent(got, requests.ActionLinkSent) || !hasEvent(got, requests.ActionDownloaded) {
			t.Errorf("events = %v", got["events"])
		}

		// Expired: a week on, the link is told to have expired, and the key then goes.
		id2, _ := open("hal2.notify@example.org", "held.member@example.org")
		token2 := h.WaitLink("hal2.notify@example.org", "/requests/download?token=")
		h.Clock.Advance(requests.ShredAfter + time.Hour)
		h.KeepStaff(ctx, dpoID)                                            // a staff session idle that long has ended: they gave a code again
		if _, s, err := h.App.Requests().Tidy(ctx); err != nil || s != 1 { // the first only: the second's link is live
			t.Errorf("Tidy shredded %d (%v), want the used link's request only", s, err)
		}
		if has, _ := h.App.Vault().HasKey(ctx, id2); !has {
			t.Error("the key of a request whose link is live was shredded")
		}
		// Its key shredded, the used link still says it was used.
		if r := h.Do("POST", "/api/v1/requests/download", map[string]string{"token": token}, ""); r.Status != 409 {
			t.Errorf("used link after the shredding = %d %s", r.Status, r.Body)
		}
		h.Clock.Advance(requests.DefaultDownloadTTL)
		h.KeepStaff(ctx, dpoID) // a staff session idle that long has ended: they gave a code again
		exp := h.Do("POST", "/api/v1/requests/download", map[string]string{"token": token2}, "")
		if _, code := exp.ErrorField(); exp.Status != 400 || code != "download_expired" {
			t.Errorf("expired = %d %s", exp.Status, exp.Body)
		}
		if _, s, err := h.App.Requests().Tidy(ctx); err != nil || s != 1 {
			t.Errorf("Tidy after the link expired shredded %d (%v), want 1", s, err)
		}

		// The member erased after the link was sent: the link finds no data.
		_, goneToken := h.Member("gone.member@example.org", "correct horse battery", nil)
		open("gina.notify@example.org", "gone.member@example.org")
		goneLink := h.WaitLink("gina.notify@example.org", "/requests/download?token=")
		del := h.Do("DELETE", "/api/v1/me", map[string]string{"password": "correct horse battery"}, goneToken)
		if del.Status != 202 {
			t.Fatalf("erase = %d %s", del.Status, del.Body)
		}
		h.WaitErasure(del.JSON()["request_id"].(string))
		if r := h.Do("POST", "/api/v1/requests/download", map[string]string{"token": goneLink}, ""); r.Status != 404 {
			t.Errorf("the link of an erased member = %d %s", r.Status, r.Body)
		} else if _, code := r.ErrorField(); code != "no_data_held" {
			t.Errorf("the link of an erased member = %s", r.Body)
		}

		// The member moved to another address after the link was sent, and someone else
		// proved the old one: the link delivers neither (staff verified the requester
		// against the first account only).
		_, movedToken := h.Member("moved@example.org", "correct horse battery", nil)
		open("mo.notify@example.org", "moved@example.org")
		movedLink := h.WaitLink("mo.notify@example.org", "/requests/download?token=")
		if r := h.Do("PATCH", "/api/v1/me", map[string]any{"email": "moved2@example.org", "current_password": "correct horse battery"}, movedToken); r.Status != 200 {
			t.Fatalf("move = %d %s", r.Status, r.Body)
		}
		if r := h.Do("POST", "/api/v1/verifications", map[string]string{"token": h.WaitLink("moved2@example.org", "/verify?token=")}, ""); r.Status != 200 {
			t.Fatalf("confirm the move = %d %s", r.Status, r.Body)
		}
		if r := h.Register(map[string]any{"email": "moved@example.org", "password": "another horse battery", "name": "Pat Quinn",
			"birthdate": "1980-01-01", "country": "DE"}); r.Status != 201 {
			t.Fatalf("the second registration = %d %s", r.Status, r.Body)
		}
		var second string
		for deadline := time.Now().Add(10 * time.Second); second == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if ms := h.Mails("moved@example.org"); len(ms) > 0 {
				if link, tok := ms[len(ms)-1].Link(); strings.Contains(link, "/verify?token=") {
					second = tok
				}
			}
		}
		if r := h.Do("POST", "/api/v1/verifications", map[string]string{"token": second}, ""); r.Status != 200 {
			t.Fatalf("the second account's confirmation = %d %s", r.Status, r.Body)
		}
		if r := h.Do("POST", "/api/v1/requests/download", map[string]string{"token": movedLink}, ""); r.Status != 404 {
			t.Errorf("the link after the address changed hands = %d (%d bytes), want 404", r.Status, len(r.Body))
		}

		// No member under the address: the answer says so, and sends no link.
		open("nora.notify@example.org", "nobody.at.all@example.org")
		mailWith(h, "nora.notify@example.org", "We hold no personal data under the address given")
		if n := len(mailsWith(h, "nora.notify@example.org", "/requests/download")); n != 0 {
			t.Errorf("%d download links sent where no data is held", n)
		}
	})
}

// Multipart bodies of requests without a login (up to megabytes each) have a budget
// per IP that is spent before the body is read: bodies refused while they are read
// spend it too, and past it the answer is 429 without reading.
func TestVisitorUploadLimit(t *testing.T) {
	apptest.EachDatabase(t, func(t *testing.T, dbURL string) {
		h := apptest.Start(t, dbURL, "--rate-limits=true")
		// A field past the 64 KiB a field may hold: refused while the body is read.
		body := "--XYZ\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n" + strings.Repeat("x", 70<<10) + "\r\n--XYZ--\r\n"
		send := func() int {
			req, _ := http.NewRequest("POST", h.URL+"/api/v1/requests", strings.NewReader(body))
			req.Header.Set("Content-Type", "multipart/form-data; boundary=XYZ")
			resp, err := h.Client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		for i := range 6 {
			if st := send(); st != 400 {
				t.Fatalf("unreadable body %d = %d, want 400", i+1, st)
			}
		}
		if st := send(); st != 429 {
			t.Fatalf("the 7th body in a minute = %d, want 429", st)
		}
	})
}

// A visitor's request to erase, restrict, object or withdraw is carried out when the
// DPO closes it as done, once the identity is verified, on the account that proved the
// address the data is held under; an unknown address gets the answer that nothing is
// held.
func TestVisitorRightsCarriedOut(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		dpoID, dpoTok := h.Member("carry.dpo@example.org", pw, nil)
		if err := h.GrantStaff(t.Context(), dpoID, "dpo"); err != nil {
			t.Fatal(err)
		}
		ask := func(right, held, notify string) string {
			t.Helper()
			if r := h.Do("POST", "/api/v1/requests", map[string]any{"name": "Vic Visitor", "email": notify, "held_email": held, "right": right}, ""); r.Status != 202 {
				t.Fatalf("%s: %d %s", right, r.Status, r.Body)
			}
			c := h.Do("POST", "/api/v1/requests/confirm", map[string]string{"token": h.WaitLink(notify, "/requests/confirm?token=")}, "")
			if c.Status != 200 {
				t.Fatalf("confirm %s: %d %s", right, c.Status, c.Body)
			}
			return c.JSON()["id"].(string)
		}
		done := func(id string) apptest.Response {
			t.Helper()
			return h.Do("POST", "/api/v1/staff/requests/"+id+"/state", map[string]any{"state": "done"}, dpoTok)
		}
		verify := func(id string) {
			t.Helper()
			if r := h.Do("POST", "/api/v1/staff/requests/"+id+"/identity", map[string]any{"verified": true, "note": "ID matches"}, dpoTok); r.Status != 200 {
				t.Fatalf("verify: %d %s", r.Status, r.Body)
			}
		}

		// Restriction, then objection and withdrawal, on one member.
		memberID, memberTok := h.Member("carried@example.org", pw, nil)
		if r := h.Do("PUT", "/api/v1/me/consents", `{"choices":{"newsletter":true}}`, memberTok); r.Status != 200 {
			t.Fatalf("consent: %d %s", r.Status, r.Body)
		}
		id := ask("restriction", "carried@example.org", "carried.notify@example.org")
		if r := done(id); r.Status != 409 || !strings.Contains(string(r.Body), "identity_unverified") {
			t.Fatalf("done before the identity check = %d %s", r.Status, r.Body)
		}
		if f, _ := h.App.Consent().Flags(t.Context(), memberID); f.Restricted {
			t.Fatal("restricted before the identity check")
		}
		verify(id)
		if r := done(id); r.Status != 200 {
			t.Fatalf("done = %d %s", r.Status, r.Body)
		}
		if f, err := h.App.Consent().Flags(t.Context(), memberID); err != nil || !f.Restricted {
			t.Fatalf("after the restriction request, flags %+v, %v", f, err)
		}
		for _, right := range []string{"objection", "withdrawal"} {
			id := ask(right, "carried@example.org", right+".notify@example.org")
			verify(id)
			if r := done(id); r.Status != 200 {
				t.Fatalf("%s done = %d %s", right, r.Status, r.Body)
			}
		}
		if f, _ := h.App.Consent().Flags(t.Context(), memberID); !f.Objected {
			t.Error("the objection was not recorded")
		}
		hist, err := h.App.Consent().History(t.Context(), memberID)
		if err != nil || hist[0].Purpose != "newsletter" || hist[0].Decision != "withdrawn" || hist[0].Source != "privacy_request" {
			t.Errorf("the newest decision is %+v (%v), want the newsletter withdrawn by the request", hist[0], err)
		}

		// Erasure of another member.
		goneID, goneTok := h.Member("erase.me@example.org", pw, nil)
		id = ask("erasure", "erase.me@example.org", "erase.notify@example.org")
		verify(id)
		// A double click: the erasure is started once, whichever answer comes first.
		statuses := make([]int, 2)
		var wg sync.WaitGroup
		for i := range statuses {
			wg.Go(func() { statuses[i] = done(id).Status })
		}
		wg.Wait()
		if !slices.Contains(statuses, 200) {
			t.Fatalf("erasure done twice at once = %v, want one 200", statuses)
		}
		var started int
		if err := h.App.DB().QueryRowContext(t.Context(), `SELECT count(*) FROM erasure_requests WHERE source = 'privacy_request'`).Scan(&started); err != nil || started != 1 {
			t.Fatalf("%d erasures started by the request (%v), want 1", started, err)
		}
		if r := h.Do("GET", "/api/v1/me", nil, goneTok); r.Status != 401 {
			t.Errorf("the erased member's session still answers %d", r.Status)
		}
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if _, err := h.App.Accounts().Profile(t.Context(), goneID); err != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the account is still there 15 s after the erasure request was done")
			}
		}

		// An address no account proved: nothing is done, and the answer says so.
		id = ask("erasure", "nobody@example.org", "nobody.notify@example.org")
		verify(id)
		if r := done(id); r.Status != 200 {
			t.Fatalf("done for an unknown address = %d %s", r.Status, r.Body)
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			found := false
			for _, m := range h.Mails("nobody.notify@example.org") {
				found = found || strings.Contains(strings.Join(strings.Fields(m.Raw), " "), "We hold no personal data under the address given")
			}
			if found {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the requester of an unknown address was not told that nothing is held")
			}
		}
	})
}

// A rectification request is answered with a correction staff make: the member's
// profile changes (a child's birthdate too, on evidence), the request records which
// fields, and bad input changes nothing.
func TestRectificationByStaff(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		dpoID, dpoTok := h.Member("rect.dpo@example.org", pw, nil)
		if err := h.GrantStaff(t.Context(), dpoID, "dpo"); err != nil {
			t.Fatal(err)
		}
		memberID, memberTok := h.Member("rect@example.org", pw, map[string]any{"name": "Ada Byron"})
		r := h.Do("POST", "/api/v1/me/requests", map[string]any{"right": "rectification", "details": "My name is Ada Lovelace since my marriage."}, memberTok)
		if r.Status != 201 {
			t.Fatalf("request: %d %s", r.Status, r.Body)
		}
		id := r.JSON()["id"].(string)
		fix := func(body map[string]any) apptest.Response {
			return h.Do("POST", "/api/v1/staff/requests/"+id+"/rectification", body, dpoTok)
		}
		if r := fix(map[string]any{}); r.Status != 400 || !strings.Contains(string(r.Body), "nothing_changed") {
			t.Errorf("an empty correction = %d %s", r.Status, r.Body)
		}
		if r := fix(map[string]any{"birthdate": "tomorrow"}); r.Status != 400 || !strings.Contains(string(r.Body), `"field":"birthdate"`) {
			t.Errorf("a bad birthdate = %d %s", r.Status, r.Body)
		}
		if r := fix(map[string]any{"name": "Ada Lovelace"}); r.Status != 200 {
			t.Fatalf("the correction = %d %s", r.Status, r.Body)
		}
		p, err := h.App.Accounts().Profile(t.Context(), memberID)
		if err != nil || p.Name != "Ada Lovelace" {
			t.Fatalf("after the correction the name is %q (%v)", p.Name, err)
		}
		got := h.Do("GET", "/api/v1/staff/requests/"+id, nil, dpoTok)
		if !strings.Contains(string(got.Body), `"action":"rectified"`) || !strings.Contains(string(got.Body), "Corrected: name.") {
			t.Errorf("the request does not record the correction: %s", got.Body)
		}
		if r := fix(map[string]any{"unknown": "x"}); r.Status != 400 {
			t.Errorf("an unknown field = %d", r.Status)
		}
	})
}

// An identity document is not opened by a link from another site: the opening is
// recorded in the DPO's name, and a Lax session cookie follows such a link.
func TestRequestDocumentNotCrossSite(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		dpoID, dpoTok := h.Member("xsite.dpo@example.org", pw, nil)
		if err := h.GrantStaff(t.Context(), dpoID, "dpo"); err != nil {
			t.Fatal(err)
		}
		if r := sendVisitor(h, map[string]string{"name": "Xena Site", "email": "xsite.notify@example.org", "right": "access"},
			&doc{"id.pdf", "application/pdf", pdfDoc}); r.Status != 202 {
			t.Fatalf("request: %d %s", r.Status, r.Body)
		}
		c := h.Do("POST", "/api/v1/requests/confirm", map[string]string{"token": h.WaitLink("xsite.notify@example.org", "/requests/confirm?token=")}, "")
		if c.Status != 200 {
			t.Fatalf("confirm: %d %s", c.Status, c.Body)
		}
		path := h.URL + "/api/v1/staff/requests/" + c.JSON()["id"].(string) + "/document"
		get := func(site string) int {
			req, _ := http.NewRequest("GET", path, nil)
			req.Header.Set("Authorization", "Bearer "+dpoTok)
			req.Header.Set("Sec-Fetch-Site", site)
			resp, err := h.Client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if st := get("cross-site"); st != 403 {
			t.Errorf("a cross-site opening = %d, want 403", st)
		}
		if st := get("same-origin"); st != 200 {
			t.Errorf("an opening from the site = %d, want 200", st)
		}
	})
}
