package app_test

import (
	"bytes"
	"context"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"testing"
	"time"

	"steward/internal/app/apptest"
	"steward/internal/blob"
)

// courtOrder is the document an authority sends, with a marker that must never be
// stored in plain text.
var courtOrder = []byte("%PDF-1.7\n% PRODUCTION-ORDER-4711-OF-THE-DISTRICT-COURT\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n")

// postDisclosure records a disclosure through the API as multipart, with the
// document if any.
func postDisclosure(h *apptest.Harness, tok string, fields map[string]string, document []byte) apptest.Response {
	h.T.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		_ = mw.WriteField(k, v)
	}
	if document != nil {
		hdr := textproto.MIMEHeader{}
		hdr.Set("Content-Disposition", `form-data; name="document"; filename="order.pdf"`)
		hdr.Set("Content-Type", "application/pdf")
		pw, _ := mw.CreatePart(hdr)
		_, _ = pw.Write(document)
	}
	_ = mw.Close()
	req, _ := http.NewRequest("POST", h.URL+"/api/v1/staff/disclosures", &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := h.Client.Do(req)
	if err != nil {
		h.T.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return apptest.Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// staffMember registers a member and grants them a role.
func staffMember(t *testing.T, h *apptest.Harness, email, role string) (id, tok string) {
	t.Helper()
	id, tok = h.Member(email, pw, nil)
	if err := h.GrantStaff(context.Background(), id, role); err != nil {
		t.Fatal(err)
	}
	return id, tok
}

// auditEvents are the names of the audit log's entries of an account.
func auditEvents(t *testing.T, h *apptest.Harness, accountID string) []string {
	t.Helper()
	list, err := h.App.Audit().ForAccount(context.Background(), h.App.DB(), accountID, 200)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range list {
		out = append(out, e.Event)
	}
	return out
}

func disclosureFields(members string) map[string]string {
	return map[string]string{"authority": "District Court of Example", "legal_basis": "Production order 4711 under § 95 StPO",
		"categories": "contact details, login times", "what": "Email address and the login times of March 2026",
		"disclosed_at": time.Now().UTC().Format(time.DateOnly), "members": members}
}

// The disclosures register (P-SHARE-3), through the API on every engine: a disclosure
// without a document or an authority is refused with the field named and nothing
// stored; one recorded tells its member by mail and on their privacy page, its
// document sealed in the blob store and each opening of it audited; one under a "not
// yet" flag tells nobody (not even the member's export) until it is lifted, and is
// due for review once its date passes; the member's erasure removes their link and
// leaves nothing of them.
func TestDisclosuresRegister(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := context.Background()
		dpoID, dpo := staffMember(t, h, "dpo-disc@example.net", "dpo")
		_, support := staffMember(t, h, "support-disc@example.net", "support")
		annaID, anna := h.Member("anna.disclosed@example.org", pw, map[string]any{"name": "Anna Offenlegung"})
		bertID, bert := h.Member("bert.withheld@example.org", pw, nil)

		// Refusals, with the field named, and nothing stored.
		for _, c := range []struct {
			name   string
			fields map[string]string
			doc    []byte
			field  string
		}{
			{"no document", disclosureFields(annaID), nil, "document"},
			{"not a document", disclosureFields(annaID), []byte("just text"), "document"},
			{"no authority", func() map[string]string { f := disclosureFields(annaID); delete(f, "authority"); return f }(), courtOrder, "authority"},
			{"no legal basis", func() map[string]string { f := disclosureFields(annaID); f["legal_basis"] = " "; return f }(), courtOrder, "legal_basis"},
			{"no member", disclosureFields(""), courtOrder, "members"},
			{"unknown member", disclosureFields("nobody@example.org"), courtOrder, "members"},
			{"future", func() map[string]string {
				f := disclosureFields(annaID)
				f["disclosed_at"] = time.Now().AddDate(0, 0, 3).Format(time.DateOnly)
				return f
			}(), courtOrder, "disclosed_at"},
			{"withheld without reason", func() map[string]string {
				f := disclosureFields(annaID)
				f["withhold"], f["review_at"] = "true", time.Now().AddDate(0, 1, 0).Format(time.DateOnly)
				return f
			}(), courtOrder, "withhold_reason"},
			{"withheld without review date", func() map[string]string {
				f := disclosureFields(annaID)
				f["withhold"], f["withhold_reason"] = "true", "The inquiry is secret"
				return f
			}(), courtOrder, "review_at"},
		} {
			r := postDisclosure(h, dpo, c.fields, c.doc)
			if field, _ := r.ErrorField(); r.Status != http.StatusBadRequest || field != c.field {
				t.Errorf("%s: %d %s, want 400 naming %s", c.name, r.Status, r.Body, c.field)
			}
		}
		if r := postDisclosure(h, support, disclosureFields(annaID), courtOrder); r.Status != http.StatusForbidden {
			t.Errorf("support records a disclosure: %d, want 403", r.Status)
		}
		if list := h.Do("GET", "/api/v1/staff/disclosures", nil, dpo).JSON()["disclosures"].([]any); len(list) != 0 {
			t.Fatalf("refused disclosures were stored: %v", list)
		}
		var docs int
		_ = h.App.Blobs().List(ctx, "disclosures/", func(_ blob.Info) error { docs++; return nil })
		if docs != 0 {
			t.Fatalf("%d documents stored by refused disclosures", docs)
		}

		// Anna is told at once: by mail and on her privacy page.
		r := postDisclosure(h, dpo, disclosureFields("anna.disclosed@example.org"), courtOrder)
		if r.Status != http.StatusCreated {
			t.Fatalf("record: %d %s", r.Status, r.Body)
		}
		told := r.JSON()
		if told["withheld"] != false || told["members"].(float64) != 1 {
			t.Errorf("recorded: %s", r.Body)
		}
		mails := h.WaitMail("anna.disclosed@example.org", 2) // the confirmation, then the disclosure
		if m := mails[len(mails)-1].Raw; !strings.Contains(m, "District Court of Example") || !strings.Contains(m, "login times of March 2026") {
			t.Errorf("the disclosure mail does not say what was disclosed to whom:\n%s", m)
		}
		mine := h.Do("GET", "/api/v1/me/disclosures", nil, anna).JSON()["disclosures"].([]any)
		if len(mine) != 1 || mine[0].(map[string]any)["what"] != "Email address and the login times of March 2026" {
			t.Errorf("anna's disclosures: %v", mine)
		}
		// The document is sealed: the blob store never holds it in plain text.
		_ = h.App.Blobs().List(ctx, "disclosures/", func(i blob.Info) error {
			docs++
			rc, err := h.App.Blobs().Open(ctx, i.Name, 0, -1)
			if err != nil {
				return err
			}
			defer rc.Close()
			b, _ := io.ReadAll(rc)
			if bytes.Contains(b, []byte("PRODUCTION-ORDER-4711")) {
				t.Errorf("the document is stored in plain text")
			}
			return nil
		})
		if docs != 1 {
			t.Errorf("%d documents stored, want 1", docs)
		}
		// Viewing the document is recorded.
		link := told["document"].(map[string]any)["link"].(string)
		if d := h.Do("GET", link, nil, dpo); d.Status != 200 || !bytes.Equal(d.Body, courtOrder) || d.Header.Get("Content-Type") != "application/pdf" {
			t.Errorf("document: %d %q", d.Status, d.Header.Get("Content-Type"))
		}
		if d := h.Do("GET", link, nil, support); d.Status != http.StatusForbidden {
			t.Errorf("support opens the document: %d", d.Status)
		}
		events := auditEvents(t, h, dpoID)
		for _, e := range []string{"disclosure_recorded", "disclosure_document_viewed"} {
			if !slices.Contains(events, e) {
				t.Errorf("audit log of the dpo lacks %s: %v", e, events)
			}
		}

		// Bert is not told yet: no mail, nothing on his page or in his export.
		f := disclosureFields(bertID)
		f["withhold"], f["withhold_reason"], f["review_at"] = "true", "The prosecutor asks us not to tell yet", time.Now().AddDate(0, 0, 10).Format(time.DateOnly)
		r = postDisclosure(h, dpo, f, courtOrder)
		if r.Status != http.StatusCreated || r.JSON()["withheld"] != true || r.JSON()["due_for_review"] != false {
			t.Fatalf("record withheld: %d %s", r.Status, r.Body)
		}
		withheld := r.JSON()["id"].(string)
		if n := len(h.Mails("bert.withheld@example.org")); n != 1 { // the confirmation only
			t.Errorf("bert has %d mails, want the confirmation only", n)
		}
		if mine := h.Do("GET", "/api/v1/me/disclosures", nil, bert).JSON()["disclosures"].([]any); len(mine) != 0 {
			t.Errorf("bert sees a withheld disclosure: %v", mine)
		}
		if ex := h.Do("GET", "/api/v1/me/export", nil, bert); ex.Status != 200 || bytes.Contains(ex.Body, []byte("login times of March")) {
			t.Errorf("bert's export: %d, holds the withheld disclosure: %v", ex.Status, bytes.Contains(ex.Body, []byte("login times of March")))
		}
		// Postponing needs a future date; after the review date it is due.
		if p := h.Do("POST", "/api/v1/staff/disclosures/"+withheld+"/postpone", map[string]string{"withhold_reason": "Still secret", "review_at": "2001-01-01"}, dpo); p.Status != 400 {
			t.Errorf("postpone to the past: %d %s", p.Status, p.Body)
		}
		h.Clock.Advance(11 * 24 * time.Hour)
		dpo = h.StaffLogin(dpoID, "dpo-disc@example.net", pw) // a staff session lasts 12 hours
		list := h.Do("GET", "/api/v1/staff/disclosures", nil, dpo).JSON()
		if list["due_for_review"].(float64) != 1 {
			t.Errorf("due for review after its date: %v", list["due_for_review"])
		}
		l := h.Do("POST", "/api/v1/staff/disclosures/"+withheld+"/lift", nil, dpo)
		if l.Status != 200 || l.JSON()["withheld"] != false || l.JSON()["due_for_review"] != false {
			t.Fatalf("lift: %d %s", l.Status, l.Body)
		}
		if again := h.Do("POST", "/api/v1/staff/disclosures/"+withheld+"/lift", nil, dpo); again.Status != http.StatusConflict {
			t.Errorf("lift twice: %d", again.Status)
		}
		h.WaitMail("bert.withheld@example.org", 2)
		if mine := h.Do("GET", "/api/v1/me/disclosures", nil, bert).JSON()["disclosures"].([]any); len(mine) != 1 {
			t.Errorf("bert after the lift: %v", mine)
		}
		if !slices.Contains(auditEvents(t, h, dpoID), "disclosure_flag_lifted") {
			t.Error("the lift is not in the audit log")
		}

		// A legal hold naming the register keeps Bert's link through his erasure.
		if r := h.Do("POST", "/api/v1/staff/holds", map[string]any{"subject": bertID, "holders": []string{"disclosures"},
			"reason": "The prosecutor's case is open"}, dpo); r.Status != http.StatusCreated {
			t.Fatalf("hold: %d %s", r.Status, r.Body)
		}
		eraseMember(t, h, bert, "holding")
		if d := h.Do("GET", "/api/v1/staff/disclosures/"+withheld, nil, dpo).JSON(); len(d["linked"].([]any)) != 1 || d["what"] != "Email address and the login times of March 2026" {
			t.Errorf("a hold on the register did not keep bert's link: %v", d)
		}

		// Anna's erasure removes her link; the register keeps the disclosure.
		terms, err := h.App.Accounts().Identifiers(ctx, annaID)
		if err != nil {
			t.Fatal(err)
		}
		eraseMember(t, h, anna, "done")
		d := h.Do("GET", "/api/v1/staff/disclosures/"+told["id"].(string), nil, dpo).JSON()
		if d["members"].(float64) != 1 || len(d["linked"].([]any)) != 0 || d["authority"] != "District Court of Example" {
			t.Errorf("after anna's erasure: %v", d)
		}
		residue, err := h.App.Registry().ScanAll(ctx, h.App.DB(), terms)
		if err != nil {
			t.Fatal(err)
		}
		left, err := h.App.Registry().CheckResidue(ctx, annaID)
		if err != nil {
			t.Fatal(err)
		}
		if len(residue) > 0 || len(left) > 0 {
			t.Errorf("residue of anna: %v %v", residue, left)
		}
	})
}
