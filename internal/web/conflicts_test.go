package web_test

import (
	"net/http"
	"regexp"
	"testing"

	"steward/internal/app/apptest"
	"steward/internal/consent"
	"steward/internal/store/storetest"
)

// conflictRowRE finds the rows of the conflicts table.
var conflictRowRE = regexp.MustCompile(`(?s)<tr>\s*<td>`)

// TestConflictsPage: the DPO and support see the consent conflicts page by page, with
// a filter by purpose and links that carry it (no script); other members are refused
// (issue 12, the staff layout's lists), on every engine.
func TestConflictsPage(t *testing.T) {
	t.Parallel()
	for dialect, dbURL := range storetest.Engines(t) {
		t.Run(string(dialect), func(t *testing.T) {
			t.Parallel()
			testConflictsPage(t, start(t, dbURL))
		})
	}
}

func testConflictsPage(t *testing.T, s *site) {
	ctx := t.Context()
	c := s.client()
	id := s.signUp(t, c, "ada@example.com", "Ada Lovelace", "analytical engine 1843")
	// Decisions that alternate between two sources, each disagreeing with the one
	// before: every one after the first is a conflict. 56 about the newsletter, 3
	// about sharing with partners.
	const evidence = "imported-from-crm-7f3a"
	flip := func(purpose string, n int) {
		for i := range n + 1 {
			d, src := consent.Granted, consent.SourceForm
			if i%2 == 1 {
				d, src = consent.Withdrawn, consent.SourceAPI
			}
			if _, err := s.app.Consent().Record(ctx, id, purpose, d, src, map[string]string{"note": evidence}); err != nil {
				t.Fatal(err)
			}
		}
	}
	flip("newsletter", 56)
	flip("partner_sharing", 3)

	c.get("/staff/consent-conflicts").want(t, "member", http.StatusForbidden, "Staff only")
	s.client().get("/staff/consent-conflicts").wantRedirect(t, "anonymous", "/login")

	dpo := s.client()
	dpoID := s.signUp(t, dpo, "grace@example.com", "Grace Hopper", "compiler cobol 1959")
	if err := apptest.GrantStaff(ctx, s.app, dpoID, "dpo"); err != nil {
		t.Fatal(err)
	}
	dpo.get("/account").want(t, "dpo's header", http.StatusOK, `<a href="/staff">Staff</a>`)
	dpo.get("/staff").wantRedirect(t, "staff home of the DPO", "/staff/requests")

	for _, tt := range []struct {
		name, path string
		rows       int
		want       []string
		lacks      []string
	}{
		{"first page", "/staff/consent-conflicts", 50, []string{"Showing 1–50 of 59", "Page 1 of 2",
			`href="/staff/consent-conflicts?page=2" rel="next"`, `aria-current="page">Consent conflicts`, "Sharing with selected partners",
			"consent withdrawn, through the API", "consent given, through the preferences form", id},
			// The sidebar offers only what the DPO's role opens.
			[]string{`rel="prev"`, evidence, `href="/staff/campaigns"`}},
		{"second page", "/staff/consent-conflicts?page=2", 9, []string{"Showing 51–59 of 59", "Page 2 of 2",
			`href="/staff/consent-conflicts" rel="prev"`}, []string{`rel="next"`}},
		{"smaller pages", "/staff/consent-conflicts?page=2&size=25", 25, []string{"Showing 26–50 of 59", "Page 2 of 3",
			`href="/staff/consent-conflicts?page=3&amp;size=25" rel="next"`, `href="/staff/consent-conflicts?size=25" rel="prev"`,
			`<option value="25" selected>`}, nil},
		{"one purpose", "/staff/consent-conflicts?purpose=partner_sharing", 3, []string{"Showing 1–3 of 3",
			`<option value="partner_sharing" selected>`}, []string{"Page 1 of", ">Newsletter</th>"}},
		{"one purpose, paged", "/staff/consent-conflicts?purpose=newsletter&size=25&page=3", 6, []string{"Showing 51–56 of 56",
			`href="/staff/consent-conflicts?page=2&amp;purpose=newsletter&amp;size=25" rel="prev"`}, nil},
		{"past the end", "/staff/consent-conflicts?page=9", 0, []string{"No conflicts on this page.", "the list has 59",
			`href="/staff/consent-conflicts?page=2" rel="prev"`}, nil},
		{"nonsense", "/staff/consent-conflicts?page=-3&size=7&purpose=nope", 50, []string{"Showing 1–50 of 59"}, nil},
	} {
		p := dpo.get(tt.path)
		p.want(t, tt.name, http.StatusOK, tt.want...)
		for _, l := range tt.lacks {
			p.lacks(t, tt.name, l)
		}
		if got := len(conflictRowRE.FindAllString(p.body, -1)); got != tt.rows {
			t.Errorf("%s: %d rows, want %d", tt.name, got, tt.rows)
		}
	}
}
