package web

import "net/http"

// navLink is one link of the member tabs or the staff sidebar; Current marks the page
// shown (aria-current="page").
type navLink struct {
	Href, Label string
	Current     bool
	Danger      bool // a link to an action that cannot be undone
	Download    bool // a file, not a page
}

// memberTabs are the tabs of the member area, in the order shown.
var memberTabs = []struct {
	page string
	link navLink
}{
	{"account", navLink{Href: "/account", Label: "Profile"}},
	{"files", navLink{Href: "/account/files", Label: "Files"}},
	{"preferences", navLink{Href: "/account/preferences", Label: "Privacy preferences"}},
	{"requests", navLink{Href: "/account/requests", Label: "Privacy requests"}},
	{"sessions", navLink{Href: "/account/sessions", Label: "Sessions"}},
	{"password", navLink{Href: "/account/password", Label: "Password"}},
	{"activity", navLink{Href: "/account/activity", Label: "Activity"}},
	{"access", navLink{Href: "/account/access", Label: "Staff access"}},
	{"", navLink{Href: "/account/export", Label: "Download my data", Download: true}},
	{"delete", navLink{Href: "/account/delete", Label: "Delete account", Danger: true}},
}

// staffNav are the links of the staff sidebar.
var staffNav = []struct {
	pages []string
	link  navLink
}{
	{[]string{"campaigns", "campaign", "campaign-edit", "campaign-delete", "campaign-send"}, navLink{Href: "/staff/campaigns", Label: "Campaigns"}},
	{[]string{"campaign-new"}, navLink{Href: "/staff/campaigns/new", Label: "New campaign"}},
	{[]string{"staff-analytics-campaigns"}, navLink{Href: "/staff/analytics/campaigns", Label: "Campaign visits"}},
	{[]string{"conflicts"}, navLink{Href: "/staff/consent-conflicts", Label: "Consent conflicts"}},
	{[]string{"staff-requests", "staff-request"}, navLink{Href: "/staff/requests", Label: "Privacy requests"}},
	{[]string{"staff-holds", "staff-hold-release"}, navLink{Href: "/staff/holds", Label: "Legal holds"}},
	{[]string{"processor-notices", "processor-notice", "processor-notice-done"}, navLink{Href: "/staff/processor-notices", Label: "Processor notices"}},
	{[]string{"staff-retention"}, navLink{Href: "/staff/retention", Label: "Retention"}},
	{[]string{"staff-analytics"}, navLink{Href: "/staff/analytics", Label: "Statistics"}},
	{[]string{"staff-policies", "staff-policy"}, navLink{Href: "/staff/policy", Label: "Privacy policy"}},
	{[]string{"staff-disclosures", "staff-disclosure"}, navLink{Href: "/staff/disclosures", Label: "Disclosures"}},
	{[]string{"staff-breaches", "staff-breach"}, navLink{Href: "/staff/breaches", Label: "Breaches"}},
	{[]string{"staff-processors", "staff-processor"}, navLink{Href: "/staff/processors", Label: "Processors"}},
	{[]string{"staff-ropa"}, navLink{Href: "/staff/ropa", Label: "Records of processing"}},
	{[]string{"staff-members", "staff-member"}, navLink{Href: "/staff/members", Label: "Members"}},
	{[]string{"staff-grants"}, navLink{Href: "/staff/grants", Label: "Access grants"}},
	{[]string{"staff-audit"}, navLink{Href: "/staff/audit", Label: "Audit log"}},
	{[]string{"staff-people"}, navLink{Href: "/staff/people", Label: "Staff"}},
}

// navFor returns the member tabs of a member page and the staff sidebar of a staff
// page, the current page marked; other pages have neither.
func navFor(page string, loggedIn bool) (tabs, sidebar []navLink) {
	if !loggedIn {
		return nil, nil
	}
	if page == "request" {
		page = "requests" // one request is under the tab of them all
	}
	for _, t := range memberTabs {
		if t.page == page && page != "" {
			tabs = make([]navLink, 0, len(memberTabs))
			for _, u := range memberTabs {
				l := u.link
				l.Current = u.page == page
				tabs = append(tabs, l)
			}
			return tabs, nil
		}
	}
	for _, s := range staffNav {
		for _, p := range s.pages {
			if p == page {
				sidebar = make([]navLink, 0, len(staffNav))
				for _, u := range staffNav {
					l := u.link
					for _, q := range u.pages {
						l.Current = l.Current || q == page
					}
					sidebar = append(sidebar, l)
				}
				return nil, sidebar
			}
		}
	}
	return nil, nil
}

// styleguide shows every component of the stylesheet (development mode only).
func (p *Pages) styleguide(w http.ResponseWriter, r *http.Request) {
	p.render(w, r, http.StatusOK, "styleguide", "Style guide", p.loggedIn(r), styleguideView{
		Fields: []field{
			{Name: "sg_name", Label: "Name", Type: "text", Need: "required", Autocomplete: "name", Value: "Ada Lovelace"},
			{Name: "sg_email", Label: "Email address", Type: "email", Need: "required", Autocomplete: "email",
				Error: "Enter an email address like name@example.com.", Value: "ada@"},
			{Name: "sg_phone", Label: "Phone", Type: "tel", Need: "optional", Autocomplete: "tel", Hint: "With the country code, e.g. +44 20 7946 0000."},
		},
	})
}

type styleguideView struct {
	Fields []field
}
