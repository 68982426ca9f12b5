package app_test

import (
	"context"
	"testing"

	"steward/internal/app/apptest"
	"steward/internal/consent"
)

// changeEmail changes a member's address through the API and confirms the new one.
func changeEmail(t *testing.T, h *apptest.Harness, token, to string) {
	t.Helper()
	if r := h.Do("PATCH", "/api/v1/me", map[string]string{"email": to, "current_password": pw}, token); r.Status != 200 {
		t.Fatalf("email change = %d %s", r.Status, r.Body)
	}
	tok := h.WaitLink(to, "/verify?token=")
	if v := h.Do("POST", "/api/v1/verifications", map[string]string{"token": tok}, ""); v.Status != 200 {
		t.Fatalf("confirm %s = %d %s", to, v.Status, v.Body)
	}
}

// A member on the mailing list who changes their address is mailed at the new one,
// never at the old; where the new address had a pending subscription of its own, the
// two become one entry, confirmed.
func TestMemberEmailChangeMovesSubscription(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := context.Background()
		rows := func(subject string) map[string]string {
			t.Helper()
			out := map[string]string{}
			r, err := h.App.DB().QueryContext(ctx, `SELECT email, status FROM subscribers WHERE subject_id = $1`, subject)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			// Sealed under the account's key.
			key, err := h.App.Vault().KeyIn(ctx, h.App.DB(), subject, false)
			if err != nil {
				t.Fatal(err)
			}
			for r.Next() {
				var e, s string
				r.Scan(&e, &s)
				if e, err = key.OpenText("subscribers.email", e); err != nil {
					t.Fatal(err)
				}
				out[e] = s
			}
			return out
		}
		id, token := h.Member("first.address@example.org", pw, nil)
		if r := h.Do("PUT", "/api/v1/me/consents", `{"choices":{"newsletter":true}}`, token); r.Status != 200 {
			t.Fatalf("opt in = %d %s", r.Status, r.Body)
		}
		if a := audience(t, h, "newsletter"); !a["first.address@example.org"] || len(a) != 1 {
			t.Fatalf("audience after opting in = %v", a)
		}

		changeEmail(t, h, token, "second.address@example.org")
		if got := rows(id); len(got) != 1 || got["second.address@example.org"] != "confirmed" {
			t.Errorf("the member's list entries after the change = %v", got)
		}
		if a := audience(t, h, "newsletter"); !a["second.address@example.org"] || len(a) != 1 {
			t.Errorf("audience after the change = %v", a)
		}

		// The third address subscribed on its own and never confirmed.
		subscribe(t, h, "third.address@example.org", false)
		changeEmail(t, h, token, "third.address@example.org")
		if got := rows(id); len(got) != 1 || got["third.address@example.org"] != "confirmed" {
			t.Errorf("the member's list entries after the second change = %v", got)
		}
		if a := audience(t, h, "newsletter"); !a["third.address@example.org"] || len(a) != 1 {
			t.Errorf("audience after the second change = %v", a)
		}
		var n int
		h.App.DB().QueryRowContext(ctx, `SELECT count(*) FROM subscribers`).Scan(&n)
		if n != 1 {
			t.Errorf("%d subscriber rows, want the member's one", n)
		}
	})
}

// When a subscription joins an account, the more protective of their flags holds: an
// objection made as a subscriber survives an account whose own restriction was lifted,
// and the change is in the account's ledger.
func TestLinkKeepsObjection(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := context.Background()
		subscribe(t, h, "objector@example.org", true)
		sub, err := h.App.Newsletter().Lookup(ctx, "objector@example.org")
		if err != nil {
			t.Fatal(err)
		}
		if err := h.App.Consent().SetFlags(ctx, sub, consent.Flags{Objected: true}); err != nil {
			t.Fatal(err)
		}
		id, token := h.Member("member@example.org", pw, nil)
		h.Do("PUT", "/api/v1/me/consents", `{"restricted":true}`, token)
		h.Do("PUT", "/api/v1/me/consents", `{"restricted":false}`, token)
		changeEmail(t, h, token, "objector@example.org")
		if s, _ := h.App.Newsletter().Lookup(ctx, "objector@example.org"); s != id {
			t.Fatalf("the subscription's subject = %s, want the account %s", s, id)
		}
		f, err := h.App.Consent().Flags(ctx, id)
		if err != nil || !f.Objected || f.Restricted {
			t.Errorf("flags after the merge = %+v (%v), want the objection only", f, err)
		}
		hist, _ := h.App.Consent().History(ctx, id)
		if len(hist) == 0 || hist[0].Purpose != consent.FlagObjection || hist[0].Decision != consent.FlagSet || hist[0].Source != consent.SourceAccountLink {
			t.Errorf("newest event = %+v, want the objection set by the link", hist)
		}
		if a := audience(t, h, "newsletter"); a["objector@example.org"] {
			t.Error("the objector is in the newsletter audience")
		}
	})
}

// A confirmation link mailed to a member's old address no longer works once the
// member's list entry has moved to a new address.
func TestMovedSubscriptionOldLinkDead(t *testing.T) {
	h := apptest.Start(t, "")
	subscribe(t, h, "early@example.org", false) // pending, link mailed
	_, oldTok := h.WaitMail("early@example.org", 1)[0].Link()
	_, token := h.Member("early@example.org", pw, nil)
	changeEmail(t, h, token, "later@example.org")
	if r := h.Do("POST", "/api/v1/newsletter/confirm", map[string]string{"token": oldTok}, ""); r.Status != 400 {
		t.Errorf("the old address's confirmation link = %d %s", r.Status, r.Body)
	}
}
