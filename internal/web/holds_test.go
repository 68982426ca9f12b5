package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"steward/internal/app/apptest"
	"steward/internal/rights"
	"steward/internal/store/storetest"
)

// Legal holds through the pages, on every engine: a member without the dpo role is
// refused; the DPO's bad input names the field; a placed hold is shown to the member
// before the deletion, on the privacy center and on the erasure page, with why and
// until when; the release asks first, and then the erasure completes.
func TestHoldPages(t *testing.T) {
	t.Parallel()
	for dialect, dbURL := range storetest.Engines(t) {
		t.Run(string(dialect), func(t *testing.T) {
			t.Parallel()
			s := start(t, dbURL)
			c := s.client()
			memberID := s.signUp(t, c, "kept@example.com", "Kim Kept", "analytical engine 1843")
			c.get("/account/delete").want(t, "delete page without a hold", http.StatusOK, "Delete my account")
			if strings.Contains(c.get("/account/delete").body, "What a legal hold keeps") {
				t.Error("the delete page speaks of a hold where there is none")
			}

			st := s.client()
			dpoID := s.signUp(t, st, "dpo@example.com", "Dana Officer", "privacy by design 2018")
			st.get("/staff/holds").want(t, "holds without the role", http.StatusForbidden, "dpo role")
			st.post("/staff/holds", url.Values{"subject": {memberID}, "holders": {"requests"}, "reason": {"x"}}).
				want(t, "placing without the role", http.StatusForbidden)
			if err := apptest.GrantStaff(t.Context(), s.app, dpoID, "dpo"); err != nil {
				t.Fatal(err)
			}
			st.get("/account").want(t, "the dpo's sidebar", http.StatusOK)
			st.get("/staff/holds").want(t, "holds page", http.StatusOK, "Place a hold", `name="holders" value="requests"`, "No holds yet.",
				`href="/staff/holds"`)

			for _, tc := range []struct {
				name string
				form url.Values
				want []string
			}{
				{"no member", url.Values{"holders": {"requests"}, "reason": {"Court"}}, []string{`id="f-subject-error"`, "Member is required"}},
				{"unknown member", url.Values{"subject": {"nobody@example.com"}, "holders": {"requests"}, "reason": {"Court"}},
					[]string{`id="f-subject-error"`, "names no member"}},
				{"no holder", url.Values{"subject": {memberID}, "reason": {"Court"}}, []string{`id="f-holders-error"`, "Held data is required"}},
				{"unknown holder", url.Values{"subject": {memberID}, "holders": {"requests", "ghosts"}, "reason": {"Court"}},
					[]string{`id="f-holders-error"`, "ghosts", `value="requests" checked`}},
				{"the key alone", url.Values{"subject": {memberID}, "holders": {"vault"}, "reason": {"Court"}}, []string{`id="f-holders-error"`, "vault"}},
				{"no reason", url.Values{"subject": {memberID}, "holders": {"requests"}}, []string{`id="f-reason-error"`, "Reason is required"}},
				{"past until", url.Values{"subject": {memberID}, "holders": {"requests"}, "reason": {"Court"}, "until": {"2001-01-01"}},
					[]string{`id="f-until-error"`, "must be in the future"}},
				{"bad until", url.Values{"subject": {memberID}, "holders": {"requests"}, "reason": {"Court"}, "until": {"soon"}},
					[]string{`id="f-until-error"`, "must be a day"}},
			} {
				st.post("/staff/holds", tc.form).want(t, tc.name, http.StatusBadRequest, tc.want...)
			}
			until := time.Now().AddDate(1, 0, 0).Format(time.DateOnly)
			st.post("/staff/holds", url.Values{"subject": {"kept@example.com"}, "holders": {"requests", "audit_log"},
				"reason": {"Claim of Example GmbH, case 12/26"}, "until": {until}}).wantRedirect(t, "place", "/staff/holds?done=placed")
			list, err := s.app.Holds().List(t.Context(), memberID)
			if err != nil || len(list) != 1 {
				t.Fatalf("holds = %v, %v", list, err)
			}
			hold := list[0]
			st.get("/staff/holds?done=placed").want(t, "listed", http.StatusOK, "The hold is placed", memberID, "Claim of Example GmbH",
				"/staff/holds/"+hold.ID+"/release", "in force")

			// The member is told before deleting, and in the privacy center.
			c.get("/account/delete").want(t, "delete page with a hold", http.StatusOK, "What a legal hold keeps", "Claim of Example GmbH",
				"Your privacy requests and their history")
			c.get("/account/requests").want(t, "privacy center with a hold", http.StatusOK, "Legal holds on your data", "Claim of Example GmbH",
				"except what the legal holds below keep")
			erasure := c.post("/account/delete", url.Values{"password": {"analytical engine 1843"}}).location()
			waitState(t, s.app.Rights(), strings.TrimPrefix(erasure, "/erasures/"), rights.StateHolding)
			s.client().get(erasure).want(t, "erasure page while held", http.StatusOK, "except what a legal hold keeps",
				"Claim of Example GmbH", "Kept under a legal hold", "The security log of your account")
			if r := s.client().post("/login", url.Values{"email": {"kept@example.com"}, "password": {"analytical engine 1843"}}); r.status == http.StatusSeeOther &&
				r.location() == "/account" {
				t.Error("a member erased under a hold logged in")
			}

			st.get("/staff/holds/"+hold.ID+"/release").want(t, "release asks first", http.StatusOK, "Release the hold?",
				"erased for good", "Yes, release it")
			st.post("/staff/holds/"+hold.ID+"/release", nil).wantRedirect(t, "release", "/staff/holds?done=released")
			st.post("/staff/holds/no-such/release", nil).want(t, "release of no hold", http.StatusNotFound)
			waitState(t, s.app.Rights(), strings.TrimPrefix(erasure, "/erasures/"), rights.StateDone)
			s.client().get(erasure).want(t, "erasure page once done", http.StatusOK, "Your account is deleted")
			st.post("/staff/holds", url.Values{"subject": {memberID}, "holders": {"requests"}, "reason": {"Court"}}).
				want(t, "a hold on an erased member", http.StatusBadRequest, `id="f-subject-error"`, "was erased")
		})
	}
}

func waitState(t *testing.T, rs *rights.Service, id, want string) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		req, err := rs.Request(t.Context(), id)
		if err == nil && req.State == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("erasure %s is not %s: %+v, %v", id, want, req, err)
		}
	}
}
