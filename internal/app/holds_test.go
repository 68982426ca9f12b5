package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"steward/internal/app/apptest"
	"steward/internal/apperr"
	"steward/internal/cli"
	"steward/internal/consent"
	"steward/internal/datamap"
	"steward/internal/holds"
	"steward/internal/newsletter"
	"steward/internal/store"
	"steward/internal/vault"
)

// holdSetup makes a DPO and a member with a complaint on file (sealed details), and
// returns their ids and tokens and the member's identifiers as a residue scan looks
// for them.
func holdSetup(t *testing.T, h *apptest.Harness, email string) (dpoTok, memberID, memberTok string, terms []datamap.Term) {
	t.Helper()
	ctx := context.Background()
	dpoID, dpoTok := h.Member("dpo-"+strings.Split(email, "@")[0]+"@example.net", pw, nil)
	if err := h.GrantStaff(ctx, dpoID, "dpo"); err != nil {
		t.Fatal(err)
	}
	memberID, memberTok = h.Member(email, pw, map[string]any{"name": "Quentin Heldmann", "phone": "+49 30 7654321"})
	if r := h.Do("POST", "/api/v1/me/requests", map[string]any{"right": "complaint", "details": "Zorblatt overcharged me twice"}, memberTok); r.Status != http.StatusCreated {
		t.Fatalf("complaint: %d %s", r.Status, r.Body)
	}
	terms, err := h.App.Accounts().Identifiers(ctx, memberID)
	if err != nil {
		t.Fatal(err)
	}
	return dpoTok, memberID, memberTok, terms
}

// eraseMember asks for the member's erasure and waits until it reaches want.
func eraseMember(t *testing.T, h *apptest.Harness, tok, want string) string {
	t.Helper()
	r := h.Do("DELETE", "/api/v1/me", map[string]string{"password": pw}, tok)
	if r.Status != http.StatusAccepted {
		t.Fatalf("erase: %d %s", r.Status, r.Body)
	}
	id := r.JSON()["request_id"].(string)
	waitErasureState(t, h, id, want)
	return id
}

func waitErasureState(t *testing.T, h *apptest.Harness, id, want string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := h.Do("GET", "/api/v1/erasures/"+id, nil, "")
		if r.Status == http.StatusOK && r.JSON()["state"] == want {
			return r.JSON()
		}
		if time.Now().After(deadline) {
			t.Fatalf("erasure %s not %s after 15s: %d %s", id, want, r.Status, r.Body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scanKept runs the residue scan that accounts for the member's holds.
func scanKept(t *testing.T, h *apptest.Harness, subjectID string, terms []datamap.Term) (residue []datamap.Finding, held []datamap.Held) {
	t.Helper()
	ctx := context.Background()
	kept, err := h.App.Holds().Kept(ctx, subjectID)
	if err != nil {
		t.Fatal(err)
	}
	residue, held, _, err = h.App.Registry().ScanKept(ctx, h.App.DB(), terms, kept, false)
	if err != nil {
		t.Fatal(err)
	}
	more, heldMore, err := h.App.Registry().CheckResidueKept(ctx, subjectID, kept)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range more {
		residue = append(residue, datamap.Finding{Where: m})
	}
	for _, m := range heldMore {
		held = append(held, datamap.Held{Finding: datamap.Finding{Where: m}})
	}
	return residue, held
}

// A hold keeps exactly what it names: the erasure erases the rest, the held rows stay
// readable under the member's key, the residue scan reports them as held and passes,
// and the member cannot log in. Released, the job erases what was kept, the key dies
// and the erasure completes with nothing left (P-SEC-4, P-ERASE-2).
func TestHoldKeepsThenReleaseErases(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := context.Background()
		dpoTok, memberID, memberTok, terms := holdSetup(t, h, "held.member@example.org")
		until := h.Clock.Now().AddDate(1, 0, 0).UTC().Format(time.DateOnly)
		r := h.Do("POST", "/api/v1/staff/holds", map[string]any{"subject": memberID, "holders": []string{"requests"},
			"reason": "Pending court case 4 O 123/26 about the billing dispute", "until": until}, dpoTok)
		if r.Status != http.StatusCreated {
			t.Fatalf("place: %d %s", r.Status, r.Body)
		}
		holdID := r.JSON()["id"].(string)
		// The member sees it before erasing.
		mine := h.Do("GET", "/api/v1/me/holds", nil, memberTok)
		if mine.Status != http.StatusOK || !strings.Contains(string(mine.Body), holdID) || !strings.Contains(string(mine.Body), "court case") ||
			!strings.Contains(string(mine.Body), `"name":"requests"`) || strings.Contains(string(mine.Body), `"subject"`) {
			t.Errorf("member's holds: %d %s", mine.Status, mine.Body)
		}

		erasure := eraseMember(t, h, memberTok, "holding")
		st := waitErasureState(t, h, erasure, "holding")
		kept, _ := st["kept"].([]any)
		if len(kept) != 1 || !strings.Contains(mustJSON(t, kept), "court case") || !strings.Contains(mustJSON(t, kept), until[:4]) {
			t.Errorf("erasure status kept = %v, want the hold with its reason and until", st["kept"])
		}
		// Erased: the account (no login), consent, the audit log; kept: the requests.
		var accounts, reqs, keys int
		if err := h.App.DB().QueryRowContext(ctx, `SELECT (SELECT count(*) FROM accounts WHERE id = $1),
			(SELECT count(*) FROM privacy_requests WHERE subject_id = $1), (SELECT count(*) FROM vault_keys WHERE subject_id = $1)`,
			memberID).Scan(&accounts, &reqs, &keys); err != nil {
			t.Fatal(err)
		}
		if accounts != 0 || reqs != 1 || keys != 1 {
			t.Errorf("while held: accounts %d, requests %d, keys %d; want 0, 1, 1", accounts, reqs, keys)
		}
		if r := h.Do("POST", "/api/v1/sessions", map[string]string{"email": "held.member@example.org", "password": pw}, ""); r.Status != http.StatusUnauthorized {
			t.Errorf("login while held = %d, want 401", r.Status)
		}
		list, err := h.App.Requests().List(ctx, memberID)
		if err != nil || len(list) != 1 || list[0].Details != "Zorblatt overcharged me twice" {
			t.Errorf("held request readable: %+v, %v", list, err)
		}
		residue, held := scanKept(t, h, memberID, terms)
		for _, f := range residue {
			t.Errorf("residue while held: %s", f)
		}
		if !slices.ContainsFunc(held, func(f datamap.Held) bool { return f.Where == "privacy_requests.subject_id" && f.HoldID == holdID }) {
			t.Errorf("held = %v, want privacy_requests.subject_id under hold %s", held, holdID)
		}
		// On PostgreSQL the raw scan reads the server's files: those of the kept
		// tables are held. (The WAL cannot be told apart by table, and the files of
		// erased tables keep dead tuples until overwritten, a known limit: residue.)
		if h.App.DB().Dialect == store.Postgres {
			kept, err := h.App.Holds().Kept(ctx, memberID)
			if err != nil {
				t.Fatal(err)
			}
			raw, rawHeld, unread, err := h.App.Registry().ScanKept(ctx, h.App.DB(), terms, kept, true)
			if err != nil {
				t.Fatal(err)
			}
			if len(unread) == 0 && !slices.ContainsFunc(rawHeld, func(f datamap.Held) bool { return f.Where == "table file privacy_requests" }) {
				t.Errorf("raw held = %v, want the table file of privacy_requests", rawHeld)
			}
			for _, f := range raw {
				if slices.ContainsFunc(kept, func(k datamap.Kept) bool { return k.Table == f.Table }) {
					t.Errorf("raw residue in a kept table's file: %s", f)
				}
			}
		}
		// A second run changes nothing while the hold is in force.
		if err := h.App.Rights().HoldsEnded(ctx); err != nil {
			t.Fatal(err)
		}
		waitErasureState(t, h, erasure, "holding")

		rel := h.Do("POST", "/api/v1/staff/holds/"+holdID+"/release", nil, dpoTok)
		if rel.Status != http.StatusOK || rel.JSON()["state"] != "released" {
			t.Fatalf("release: %d %s", rel.Status, rel.Body)
		}
		h.WaitErasure(erasure) // the job the release queued
		assertGone(t, h, memberID, terms)
	})
}

// A hold with an until date ends by itself: once the clock passes it, the periodic
// job erases what it kept.
func TestHoldUntilDatePasses(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := context.Background()
		dpoTok, memberID, memberTok, terms := holdSetup(t, h, "until.member@example.org")
		r := h.Do("POST", "/api/v1/staff/holds", map[string]any{"subject": "until.member@example.org", "holders": []string{"requests", "account"},
			"reason": "Tax audit of fiscal year 2025", "until": h.Clock.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)}, dpoTok)
		if r.Status != http.StatusCreated {
			t.Fatalf("place: %d %s", r.Status, r.Body)
		}
		erasure := eraseMember(t, h, memberTok, "holding")
		// The account is kept, but cannot log in.
		if r := h.Do("POST", "/api/v1/sessions", map[string]string{"email": "until.member@example.org", "password": pw}, ""); r.Status != http.StatusUnauthorized {
			t.Errorf("login of a held account = %d, want 401", r.Status)
		}
		residue, held := scanKept(t, h, memberID, terms)
		for _, f := range residue {
			t.Errorf("residue while held: %s", f)
		}
		if !slices.ContainsFunc(held, func(f datamap.Held) bool { return f.Where == "accounts.id" && f.Holder == "account" }) {
			t.Errorf("held = %v, want accounts.id", held)
		}
		h.Clock.Advance(47 * time.Hour)
		if err := h.App.Rights().HoldsEnded(ctx); err != nil {
			t.Fatal(err)
		}
		waitErasureState(t, h, erasure, "holding")
		h.Clock.Advance(2 * time.Hour)
		if err := h.App.Rights().HoldsEnded(ctx); err != nil { // what the periodic job runs
			t.Fatal(err)
		}
		h.WaitErasure(erasure)
		assertGone(t, h, memberID, terms)
	})
}

// assertGone checks that nothing of the member is left: no residue, no key, no hold.
func assertGone(t *testing.T, h *apptest.Harness, memberID string, terms []datamap.Term) {
	t.Helper()
	ctx := context.Background()
	residue, held := scanKept(t, h, memberID, terms)
	for _, f := range residue {
		t.Errorf("residue after the hold ended: %s", f)
	}
	for _, f := range held {
		t.Errorf("held after the hold ended: %s", f)
	}
	if _, err := h.App.Vault().DataKey(ctx, memberID, false); !errors.Is(err, vault.ErrNoKey) {
		t.Errorf("data key after the hold ended: %v, want ErrNoKey", err)
	}
	if list, err := h.App.Requests().List(ctx, memberID); err != nil || len(list) != 0 {
		t.Errorf("requests after the hold ended: %v, %v", list, err)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// "steward residue" reports what a hold keeps as held, by holder and hold, and exits 0;
// anything of the member outside the held holders still fails it.
func TestCLIResidueAccountsForHolds(t *testing.T) {
	h := apptest.Start(t, "")
	ctx := context.Background()
	dpoTok, memberID, memberTok, _ := holdSetup(t, h, "cli.held@example.org")
	r := h.Do("POST", "/api/v1/staff/holds", map[string]any{"subject": memberID, "holders": []string{"requests"}, "reason": "Litigation"}, dpoTok)
	if r.Status != http.StatusCreated {
		t.Fatalf("place: %d %s", r.Status, r.Body)
	}
	holdID := r.JSON()["id"].(string)
	eraseMember(t, h, memberTok, "holding")
	env := func(k string) string {
		if k == "STEWARD_DATA" {
			return h.Data
		}
		return ""
	}
	run := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := cli.Run(ctx, args, env, &out, &errb)
		return code, out.String() + errb.String()
	}
	code, out := run("residue", memberID, "--log-level", "error")
	if code != 0 || !strings.Contains(out, "held: privacy_requests.subject_id") || !strings.Contains(out, holdID) ||
		!strings.Contains(out, "until released") || !strings.Contains(out, "no residue") || strings.Contains(out, "found:") {
		t.Fatalf("residue under a hold: exit %d, want 0 with the held data named\n%s", code, out)
	}
	// The member's id where no hold keeps it is residue.
	if _, err := h.App.DB().ExecContext(ctx, `INSERT INTO audit_log (at, event, account_id, ip, detail, sealed) VALUES (0, 'planted', NULL, '', $1, 1)`,
		"left behind "+memberID); err != nil {
		t.Fatal(err)
	}
	if code, out := run("residue", memberID, "--log-level", "error"); code != 1 || !strings.Contains(out, "found: audit_log.detail") {
		t.Errorf("residue with a planted row: exit %d, want 1 naming audit_log.detail\n%s", code, out)
	}
}

// Bad input to the holds API: each refusal names the field, and nothing is placed.
func TestHoldAPIBadInput(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := context.Background()
		dpoTok, memberID, _, _ := holdSetup(t, h, "bad.input@example.org")
		_, goneTok := h.Member("gone.before@example.org", pw, nil)
		goneID := h.Do("GET", "/api/v1/me", nil, goneTok).JSON()["id"].(string)
		h.WaitErasure(eraseMember(t, h, goneTok, "done"))
		future := h.Clock.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		for _, tc := range []struct {
			name        string
			body        any
			field, code string
		}{
			{"no subject", map[string]any{"holders": []string{"requests"}, "reason": "r"}, "subject", "required"},
			{"unknown subject", map[string]any{"subject": "no-such-member", "holders": []string{"requests"}, "reason": "r"}, "subject", "unknown"},
			{"erased subject by id", map[string]any{"subject": goneID, "holders": []string{"requests"}, "reason": "r"}, "subject", "erased"},
			{"erased subject by email", map[string]any{"subject": "gone.before@example.org", "holders": []string{"requests"}, "reason": "r"}, "subject", "erased"},
			{"no holders", map[string]any{"subject": memberID, "reason": "r"}, "holders", "required"},
			{"unknown holder", map[string]any{"subject": memberID, "holders": []string{"requests", "nope"}, "reason": "r"}, "holders", "unknown_holder"},
			{"the holds themselves", map[string]any{"subject": memberID, "holders": []string{"legal_holds"}, "reason": "r"}, "holders", "unknown_holder"},
			{"no reason", map[string]any{"subject": memberID, "holders": []string{"requests"}, "reason": "  "}, "reason", "required"},
			{"long reason", map[string]any{"subject": memberID, "holders": []string{"requests"}, "reason": strings.Repeat("x", 2001)}, "reason", "too_long"},
			{"until passed", map[string]any{"subject": memberID, "holders": []string{"requests"}, "reason": "r",
				"until": h.Clock.Now().Add(-time.Minute).UTC().Format(time.RFC3339)}, "until", "past"},
			{"until not a date", map[string]any{"subject": memberID, "holders": []string{"requests"}, "reason": "r", "until": "next week"}, "until", "date_invalid"},
			{"holders not a list", map[string]any{"subject": memberID, "holders": "requests", "reason": "r", "until": future}, "holders", "wrong_type"},
		} {
			r := h.Do("POST", "/api/v1/staff/holds", tc.body, dpoTok)
			field, code := r.ErrorField()
			if r.Status != http.StatusBadRequest || field != tc.field || (tc.code != "" && code != tc.code) {
				t.Errorf("%s: %d %s/%s, want 400 %s/%s: %s", tc.name, r.Status, field, code, tc.field, tc.code, r.Body)
			}
		}
		if list, err := h.App.Holds().List(ctx, ""); err != nil || len(list) != 0 {
			t.Errorf("holds after bad input: %v, %v; want none", list, err)
		}
		if r := h.Do("GET", "/api/v1/staff/holds/no-such-hold", nil, dpoTok); r.Status != http.StatusNotFound {
			t.Errorf("unknown hold = %d, want 404", r.Status)
		}
		if r := h.Do("POST", "/api/v1/staff/holds/no-such-hold/release", nil, dpoTok); r.Status != http.StatusNotFound {
			t.Errorf("release of an unknown hold = %d, want 404", r.Status)
		}
		// A good one is listed for staff with the subject, and audited.
		r := h.Do("POST", "/api/v1/staff/holds", map[string]any{"subject": memberID, "holders": []string{" requests ", "requests", "consent"},
			"reason": "Regulator's inquiry", "until": future}, dpoTok)
		if r.Status != http.StatusCreated || r.Header.Get("Location") != "/api/v1/staff/holds/"+r.JSON()["id"].(string) {
			t.Fatalf("place: %d %s", r.Status, r.Body)
		}
		if got := mustJSON(t, r.JSON()["holders"]); !strings.Contains(got, `"name":"consent"`) || strings.Count(got, `"name":"requests"`) != 1 {
			t.Errorf("holders = %s, want consent and requests once each", got)
		}
		list := h.Do("GET", "/api/v1/staff/holds?subject="+memberID, nil, dpoTok)
		if list.Status != http.StatusOK || !strings.Contains(string(list.Body), `"subject":"`+memberID+`"`) || !strings.Contains(string(list.Body), `"holdable"`) {
			t.Errorf("staff list: %d %s", list.Status, list.Body)
		}
		var n int
		if err := h.App.DB().QueryRowContext(ctx, `SELECT count(*) FROM audit_log WHERE event = 'legal_hold_placed'`).Scan(&n); err != nil || n != 1 {
			t.Errorf("audit of placing = %d (%v), want 1", n, err)
		}
		// Released once; a second release is a conflict. The member is not being
		// erased, so the hold stays on record, ended.
		id := r.JSON()["id"].(string)
		if rel := h.Do("POST", "/api/v1/staff/holds/"+id+"/release", nil, dpoTok); rel.Status != http.StatusOK || rel.JSON()["released_at"] == nil {
			t.Errorf("release: %d %s", rel.Status, rel.Body)
		}
		if again := h.Do("POST", "/api/v1/staff/holds/"+id+"/release", nil, dpoTok); again.Status != http.StatusConflict {
			t.Errorf("second release = %d, want 409", again.Status)
		}
		if got := h.Do("GET", "/api/v1/staff/holds/"+id, nil, dpoTok); got.Status != http.StatusOK || got.JSON()["state"] != "released" {
			t.Errorf("released hold: %d %s", got.Status, got.Body)
		}
		// The reason is sealed at rest.
		var sealed string
		if err := h.App.DB().QueryRowContext(ctx, `SELECT reason FROM legal_holds`).Scan(&sealed); err != nil || strings.Contains(sealed, "Regulator") {
			t.Errorf("reason at rest = %q (%v), want sealed", sealed, err)
		}
	})
}

// What a legal hold keeps is kept, not used: a member erased under a hold on the
// consent ledger and the newsletter has every consent still on record, yet no
// purpose but a legal obligation allows them, and no campaign audience holds them.
func TestHeldDataIsNotUsed(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		dpoTok, memberID, memberTok, _ := holdSetup(t, h, "held.reader@example.org")
		if r := h.Do("PUT", "/api/v1/me/consents", `{"choices":{"newsletter":true}}`, memberTok); r.Status != 200 {
			t.Fatalf("consent: %d %s", r.Status, r.Body)
		}
		inAudience := func() bool {
			t.Helper()
			found := false
			if err := h.App.Newsletter().AudienceByRule(t.Context(), "newsletter", func(r newsletter.Recipient) error {
				found = found || r.SubjectID == memberID
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			return found
		}
		if v, err := h.App.Consent().Allowed(t.Context(), memberID, "newsletter"); err != nil || !v.Allowed || !inAudience() {
			t.Fatalf("before the erasure: allowed %+v (%v), in the audience %v", v, err, inAudience())
		}
		if r := h.Do("POST", "/api/v1/staff/holds", map[string]any{"subject": memberID, "holders": []string{"consent", "newsletter"},
			"reason": "Dispute over a campaign"}, dpoTok); r.Status != http.StatusCreated {
			t.Fatalf("hold: %d %s", r.Status, r.Body)
		}
		eraseMember(t, h, memberTok, "holding")
		for _, k := range h.App.Consent().Register().Keys() {
			p, _ := h.App.Consent().Register().Purpose(k)
			v, err := h.App.Consent().Allowed(t.Context(), memberID, p.Key)
			if err != nil {
				t.Fatal(err)
			}
			if v.Allowed != (p.Basis == consent.LegalObligation) {
				t.Errorf("%s (%s) while held: allowed = %+v", p.Key, p.Basis, v)
			}
		}
		if inAudience() {
			t.Error("a member erased under a hold is still in the newsletter's audience")
		}
	})
}

// A hold placed at the moment the member asks for erasure either is refused (the
// erasure came first) or is seen by the erasure, which then keeps what it holds: never
// placed and ignored.
func TestHoldRacingAnErasure(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		dpoID, _ := h.Member("race.dpo@example.net", pw, nil)
		if err := h.GrantStaff(t.Context(), dpoID, "dpo"); err != nil {
			t.Fatal(err)
		}
		const n = 8
		type result struct {
			placed  bool
			erasure string
		}
		results := make([]result, n)
		var wg sync.WaitGroup
		for i := range n {
			memberID, tok := h.Member(fmt.Sprintf("race%d@example.org", i), pw, nil)
			wg.Go(func() {
				_, err := h.App.Holds().Place(t.Context(), holds.Actor{ID: dpoID}, holds.Placement{Subject: memberID,
					Holders: []string{"account"}, Reason: "Race"})
				if err != nil && apperr.KindOf(err) != apperr.Invalid {
					t.Errorf("place %d: %v", i, err)
				}
				results[i].placed = err == nil
			})
			wg.Go(func() {
				r := h.Do("DELETE", "/api/v1/me", map[string]string{"password": pw}, tok)
				if r.Status != http.StatusAccepted {
					t.Errorf("erase %d: %d %s", i, r.Status, r.Body)
					return
				}
				results[i].erasure = r.JSON()["request_id"].(string)
			})
		}
		wg.Wait()
		for i, r := range results {
			if r.erasure == "" {
				continue
			}
			want := "done"
			if r.placed {
				want = "holding"
			}
			waitErasureState(t, h, r.erasure, want)
			t.Logf("member %d: hold placed %v, erasure %s", i, r.placed, want)
		}
	})
}
