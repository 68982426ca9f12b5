package web_test

import (
	"net/http"
	"net/url"
	"steward/internal/app/apptest"
	"testing"
)

// TestPolicyPages: the DPO's form names the field in error and keeps what was typed;
// a business transfer, published, shows its controller in the member's notice and on
// the public pages; a published version's page has no form; an unknown version's diff
// is not found.
func TestPolicyPages(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	st := s.client()
	staffID := s.signUp(t, st, "dana@example.com", "Grace Hopper", "compiler cobol 1959")
	if err := apptest.GrantStaff(t.Context(), s.app, staffID, "dpo"); err != nil {
		t.Fatal(err)
	}
	mc := s.client()
	s.signUp(t, mc, "ada@example.com", "Ada Lovelace", "analytical engine 1843")
	mc.get("/account").lacks(t, "account before", `id="policy-banner"`)

	form := url.Values{"label": {"2026.1"}, "kind": {"business_transfer"}, "summary": {"Acme takes over."},
		"body": {"# Policy\n\nAcme is the controller.\n"}, "effective": {""}}
	st.post("/staff/policy/new", form).want(t, "no controller", http.StatusBadRequest,
		"New controller is required on a business transfer", `value="2026.1"`, "Acme takes over.")
	form.Set("controller", "Acme Holdings")
	form.Set("effective", "soon")
	st.post("/staff/policy/new", form).want(t, "bad date", http.StatusBadRequest, "Effective date must be a day")
	form.Set("effective", "")
	form["purposes"] = []string{"account"}
	st.post("/staff/policy/new", form).want(t, "a purpose not on consent", http.StatusBadRequest, "Choices asked again")
	delete(form, "purposes")
	st.post("/staff/policy/new", form).wantRedirect(t, "draft", "/staff/policy/2026.1?saved=1")
	st.get("/staff/policy/2026.1?saved=1").want(t, "draft", http.StatusOK, "The draft is saved", `action="/staff/policy/2026.1/publish"`)
	s.client().get("/privacy/policy/2026.1").want(t, "a draft is not public", http.StatusNotFound)
	mc.get("/account").lacks(t, "notice of a draft", `id="policy-banner"`)

	st.post("/staff/policy/2026.1/publish", nil).wantRedirect(t, "publish", "/staff/policy/2026.1?published=1")
	st.get("/staff/policy/2026.1").want(t, "published", http.StatusOK, "Business transfer to Acme Holdings")
	st.get("/staff/policy/2026.1").lacks(t, "published", `action="/staff/policy/2026.1/publish"`)
	st.post("/staff/policy/2026.1", form).want(t, "change a published version", http.StatusConflict, "cannot be changed")

	mc.get("/account").want(t, "notice", http.StatusOK, `id="policy-banner"`, "transferred to Acme Holdings", `href="/account/policy"`)
	mc.get("/account/policy").want(t, "my policy", http.StatusOK, "A business transfer to Acme Holdings", "Acme takes over.",
		`/privacy/policy/diff?from=2018.1&amp;to=2026.1`)
	mc.get("/account/policy").lacks(t, "my policy", `id="policy-banner"`)
	mc.post("/account/policy", url.Values{"version": {"2018.1"}}).want(t, "an old version", http.StatusBadRequest, "is not the version in effect")
	mc.post("/account/policy", url.Values{"version": {"2026.1"}}).wantRedirect(t, "accept", "/account/policy?accepted=1")
	mc.get("/account").lacks(t, "after accepting", `id="policy-banner"`)

	v := s.client()
	v.get("/privacy/policy").want(t, "current", http.StatusOK, "Acme is the controller.", "business transfer to Acme Holdings")
	v.get("/privacy/policy/versions").want(t, "versions", http.StatusOK, `href="/privacy/policy/2026.1"`, `href="/privacy/policy/2018.1"`)
	v.get("/privacy/policy/diff?from=2018.1&to=2026.1").want(t, "diff", http.StatusOK, "<ins>", "<del>", "Acme is the controller.")
	v.get("/privacy/policy/diff?from=2018.1&to=nope").want(t, "diff of nothing", http.StatusNotFound)
}
