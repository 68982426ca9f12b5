package app_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"steward/internal/app/apptest"
)

// readClass says what a staff route shows of members: records (every answer that
// shows member data records a staff read, which the walk below proves), or no member
// data, with why.
type readClass struct {
	records bool
	path    string // with {member}, {request}, {visitor}, {rectification}, {hold}, {file}
	body    string // JSON for the API
	none    string // why the route shows no member data, or where else its read is recorded
}

// staffReads classifies every staff route. A route registered under /staff or
// /api/v1/staff without an entry fails TestStaffReadsRecorded until it is classified.
var staffReads = map[string]readClass{
	// The member-view and the reads that existed before it.
	"GET /api/v1/staff/members/{id}":              {records: true, path: "/api/v1/staff/members/{member}"},
	"GET /api/v1/staff/members/{id}/files/{file}": {records: true, path: "/api/v1/staff/members/{member}/files/{file}"},
	"GET /staff/members/{id}":                     {records: true, path: "/staff/members/{member}"},
	"GET /staff/members/{id}/files/{file}":        {records: true, path: "/staff/members/{member}/files/{file}"},
	"GET /api/v1/staff/consent-conflicts":         {records: true},
	"GET /staff/consent-conflicts":                {records: true},
	"GET /api/v1/staff/requests":                  {records: true},
	"GET /staff/requests":                         {records: true},
	"GET /api/v1/staff/requests/{id}":             {records: true, path: "/api/v1/staff/requests/{request}"},
	"GET /staff/requests/{id}":                    {records: true, path: "/staff/requests/{request}"},
	"GET /api/v1/staff/requests/{id}/document":    {records: true, path: "/api/v1/staff/requests/{visitor}/document"},
	"GET /staff/requests/{id}/document":           {records: true, path: "/staff/requests/{visitor}/document"},
	// The API's actions on a request answer with the request.
	"POST /api/v1/staff/requests/{id}/extension": {records: true, path: "/api/v1/staff/requests/{request}/extension",
		body: `{"months":1,"reason":"the case needs a second opinion"}`},
	"POST /api/v1/staff/requests/{id}/state": {records: true, path: "/api/v1/staff/requests/{request}/state",
		body: `{"state":"in_progress"}`},
	"POST /api/v1/staff/requests/{id}/identity": {records: true, path: "/api/v1/staff/requests/{visitor}/identity",
		body: `{"verified":true}`},
	"POST /api/v1/staff/requests/{id}/rectification": {records: true, path: "/api/v1/staff/requests/{rectification}/rectification",
		body: `{"name":"Walter Corrected"}`},
	"GET /api/v1/staff/holds":         {records: true},
	"GET /staff/holds":                {records: true},
	"GET /api/v1/staff/holds/{hold}":  {records: true, path: "/api/v1/staff/holds/{hold}"},
	"GET /staff/holds/{hold}/release": {records: true, path: "/staff/holds/{hold}/release"},

	// Actions: their answer is a redirect to a page that records, or what the staff
	// member just gave; the audit log records each.
	"POST /staff/requests/{id}/state":         {none: "an action answered by a redirect"},
	"POST /staff/requests/{id}/extend":        {none: "an action answered by a redirect"},
	"POST /staff/requests/{id}/identity":      {none: "an action answered by a redirect"},
	"POST /staff/requests/{id}/rectify":       {none: "an action answered by a redirect"},
	"POST /staff/holds":                       {none: "an action answered by a redirect (its form, when refused, is GET /staff/holds's page, which records)"},
	"POST /staff/holds/{hold}/release":        {none: "an action answered by a redirect"},
	"POST /api/v1/staff/holds":                {none: "answers with the hold the DPO just placed: what they gave"},
	"POST /api/v1/staff/holds/{hold}/release": {none: "an action; answers with the hold it released, recorded in the audit log"},
	"GET /staff/members":                      {none: "a search form: it redirects to the member's page, which records"},
	"GET /staff/grants":                       {none: "grants by member id with the staff member's own reasons; no data of the member"},
	"GET /api/v1/staff/grants":                {none: "grants by member id with the staff member's own reasons; no data of the member"},
	"POST /staff/grants":                      {none: "an action answered by a redirect"},
	"POST /api/v1/staff/grants":               {none: "answers with the grant asked for"},
	"POST /staff/grants/{id}/decision":        {none: "an action answered by a redirect"},
	"POST /api/v1/staff/grants/{id}/decision": {none: "answers with the grant decided"},
	"POST /staff/grants/{id}/revoke":          {none: "an action answered by a redirect"},
	"POST /api/v1/staff/grants/{id}/revoke":   {none: "answers with the grant revoked"},
	"GET /staff":                              {none: "redirects to a staff page"},

	// Staff management and the audit log.
	"GET /api/v1/staff/people":                       {none: "the staff register: staff accounts' addresses and roles, for the admin who manages them"},
	"GET /staff/people":                              {none: "the staff register: staff accounts' addresses and roles, for the admin who manages them"},
	"POST /api/v1/staff/people":                      {none: "answers with the role granted"},
	"POST /staff/people/grant":                       {none: "an action answered by a redirect"},
	"DELETE /api/v1/staff/people/{id}/roles/{role}":  {none: "an action; no body"},
	"POST /staff/people/{id}/revoke":                 {none: "an action answered by a redirect"},
	"DELETE /api/v1/staff/people/{id}/second-factor": {none: "an action; no body"},
	"POST /staff/people/{id}/reset-second-factor":    {none: "an action answered by a redirect"},
	"GET /api/v1/staff/audit":                        {none: "entries name accounts only by the start of a keyed hash; their details stay sealed"},
	"GET /staff/audit":                               {none: "entries name accounts only by the start of a keyed hash; their details stay sealed"},
	"POST /api/v1/staff/audit/verify":                {none: "queues a verification of the chain; answers nothing of anyone"},
	"POST /staff/audit/verify":                       {none: "queues a verification of the chain; answers nothing of anyone"},

	// The governance registers: what they show is the deployment's, or counts and
	// random account ids the DPO selected, never a member's own data.
	"GET /api/v1/staff/retention":                  {none: "the rules and counts of what each run removed"},
	"POST /api/v1/staff/retention/run":             {none: "an action; answers with counts"},
	"GET /staff/retention":                         {none: "the rules and counts of what each run removed"},
	"GET /api/v1/staff/stats":                      {none: "page statistics: aggregate figures of the analytics store, suppressed below k; no member data"},
	"GET /staff/analytics":                         {none: "page statistics: aggregate figures of the analytics store, suppressed below k; no member data"},
	"POST /staff/retention/run":                    {none: "an action answered by a redirect"},
	"GET /api/v1/staff/policy":                     {none: "the policy's versions: the deployment's text, no member"},
	"POST /api/v1/staff/policy":                    {none: "the policy's versions: the deployment's text, no member"},
	"GET /api/v1/staff/policy/{version}":           {none: "the policy's versions: the deployment's text, no member"},
	"PUT /api/v1/staff/policy/{version}":           {none: "the policy's versions: the deployment's text, no member"},
	"POST /api/v1/staff/policy/{version}/publish":  {none: "the policy's versions: the deployment's text, no member"},
	"GET /staff/policy":                            {none: "the policy's versions: the deployment's text, no member"},
	"GET /staff/policy/new":                        {none: "the policy's versions: the deployment's text, no member"},
	"POST /staff/policy/new":                       {none: "the policy's versions: the deployment's text, no member"},
	"GET /staff/policy/{version}":                  {none: "the policy's versions: the deployment's text, no member"},
	"POST /staff/policy/{version}":                 {none: "the policy's versions: the deployment's text, no member"},
	"POST /staff/policy/{version}/publish":         {none: "the policy's versions: the deployment's text, no member"},
	"GET /api/v1/staff/processors":                 {none: "the register of processors and its history: no member"},
	"POST /api/v1/staff/processors":                {none: "the register of processors and its history: no member"},
	"GET /api/v1/staff/processors/{key}":           {none: "the register of processors and its history: no member"},
	"PUT /api/v1/staff/processors/{key}":           {none: "the register of processors and its history: no member"},
	"POST /api/v1/staff/processors/{key}/retire":   {none: "the register of processors and its history: no member"},
	"POST /api/v1/staff/processors/{key}/approve":  {none: "the register of processors and its history: no member"},
	"POST /api/v1/staff/processors/{key}/reject":   {none: "the register of processors and its history: no member"},
	"GET /staff/processors":                        {none: "the register of processors and its history: no member"},
	"POST /staff/processors":                       {none: "the register of processors and its history: no member"},
	"GET /staff/processors/{key}":                  {none: "the register of processors and its history: no member"},
	"POST /staff/processors/{key}":                 {none: "the register of processors and its history: no member"},
	"POST /staff/processors/{key}/retire":          {none: "the register of processors and its history: no member"},
	"POST /staff/processors/{key}/approve":         {none: "the register of processors and its history: no member"},
	"POST /staff/processors/{key}/reject":          {none: "the register of processors and its history: no member"},
	"GET /api/v1/staff/ropa":                       {none: "records of processing: built from declarations, no member"},
	"GET /staff/ropa":                              {none: "records of processing: built from declarations, no member"},
	"GET /staff/ropa/{format}":                     {none: "records of processing: built from declarations, no member"},
	"GET /api/v1/staff/breaches":                   {none: "the breach as the DPO described it (the form asks to name no one) and counts of members"},
	"POST /api/v1/staff/breaches":                  {none: "the breach as the DPO described it (the form asks to name no one) and counts of members"},
	"GET /api/v1/staff/breaches/{id}":              {none: "the breach as the DPO described it (the form asks to name no one) and counts of members"},
	"POST /api/v1/staff/breaches/{id}/members":     {none: "the breach as the DPO described it (the form asks to name no one) and counts of members"},
	"POST /api/v1/staff/breaches/{id}/report":      {none: "the breach as the DPO described it (the form asks to name no one) and counts of members"},
	"POST /api/v1/staff/breaches/{id}/notify":      {none: "the breach as the DPO described it (the form asks to name no one) and counts of members"},
	"GET /staff/breaches":                          {none: "the breach as the DPO described it (the form asks to name no one) and counts of members"},
	"POST /staff/breaches":                         {none: "the breach as the DPO described it (the form asks to name no one) and counts of members"},
	"GET /staff/breaches/{id}":                     {none: "the breach as the DPO described it (the form asks to name no one) and counts of members"},
	"POST /staff/breaches/{id}/members":            {none: "the breach as the DPO described it (the form asks to name no one) and counts of members"},
	"POST /staff/breaches/{id}/report":             {none: "the breach as the DPO described it (the form asks to name no one) and counts of members"},
	"POST /staff/breaches/{id}/notify":             {none: "the breach as the DPO described it (the form asks to name no one) and counts of members"},
	"GET /api/v1/staff/disclosures":                {none: "the disclosure as the DPO recorded it, with the random ids of the members concerned; the document is the authority's, each opening an audit entry"},
	"POST /api/v1/staff/disclosures":               {none: "the disclosure as the DPO recorded it, with the random ids of the members concerned; the document is the authority's, each opening an audit entry"},
	"GET /api/v1/staff/disclosures/{id}":           {none: "the disclosure as the DPO recorded it, with the random ids of the members concerned; the document is the authority's, each opening an audit entry"},
	"GET /api/v1/staff/disclosures/{id}/document":  {none: "the disclosure as the DPO recorded it, with the random ids of the members concerned; the document is the authority's, each opening an audit entry"},
	"POST /api/v1/staff/disclosures/{id}/lift":     {none: "the disclosure as the DPO recorded it, with the random ids of the members concerned; the document is the authority's, each opening an audit entry"},
	"POST /api/v1/staff/disclosures/{id}/postpone": {none: "the disclosure as the DPO recorded it, with the random ids of the members concerned; the document is the authority's, each opening an audit entry"},
	"GET /staff/disclosures":                       {none: "the disclosure as the DPO recorded it, with the random ids of the members concerned; the document is the authority's, each opening an audit entry"},
	"POST /staff/disclosures":                      {none: "the disclosure as the DPO recorded it, with the random ids of the members concerned; the document is the authority's, each opening an audit entry"},
	"GET /staff/disclosures/{id}":                  {none: "the disclosure as the DPO recorded it, with the random ids of the members concerned; the document is the authority's, each opening an audit entry"},
	"GET /staff/disclosures/{id}/document":         {none: "the disclosure as the DPO recorded it, with the random ids of the members concerned; the document is the authority's, each opening an audit entry"},
	"POST /staff/disclosures/{id}/lift":            {none: "the disclosure as the DPO recorded it, with the random ids of the members concerned; the document is the authority's, each opening an audit entry"},
	"POST /staff/disclosures/{id}/postpone":        {none: "the disclosure as the DPO recorded it, with the random ids of the members concerned; the document is the authority's, each opening an audit entry"},

	// Processor notices: a task shows the addresses a processor knows the member by,
	// but a notice is kept apart from the member on purpose (a hash of the subject and
	// a key of its own), so that it outlives their erasure; its opening is recorded in
	// the audit log (processor_notice_opened), not for the member.
	"GET /staff/processor-notices":                   {none: "processors, events and states: no member data"},
	"GET /api/v1/staff/processor-notices":            {none: "processors, events and states: no member data"},
	"GET /staff/processor-notices/{id}":              {none: "audit log only (processor_notice_opened): see above"},
	"GET /api/v1/staff/processor-notices/{id}":       {none: "audit log only (processor_notice_opened): see above"},
	"GET /staff/processor-notices/{id}/done":         {none: "a confirmation form: processor and event only"},
	"POST /staff/processor-notices/{id}/done":        {none: "an action answered by a redirect"},
	"POST /api/v1/staff/processor-notices/{id}/done": {none: "an action"},

	// Campaigns: marketing's drafts and counts, never a member's data.
	"GET /staff/campaigns":                    {none: "campaigns"},
	"GET /staff/analytics/campaigns":          {none: "campaign figures: aggregates of the analytics store, which holds no member data"},
	"GET /api/v1/staff/analytics/campaigns":   {none: "campaign figures: aggregates of the analytics store, which holds no member data"},
	"GET /api/v1/staff/campaigns/{id}/visits": {none: "a campaign's visit figures: aggregates of the analytics store, which holds no member data"},
	"GET /staff/campaigns/new":                {none: "campaigns"},
	"POST /staff/campaigns/new":               {none: "campaigns"},
	"GET /staff/campaigns/{id}":               {none: "campaigns"},
	"GET /staff/campaigns/{id}/send":          {none: "campaigns"},
	"POST /staff/campaigns/{id}/send":         {none: "campaigns"},
	"GET /staff/campaigns/{id}/edit":          {none: "campaigns"},
	"POST /staff/campaigns/{id}/edit":         {none: "campaigns"},
	"GET /staff/campaigns/{id}/delete":        {none: "campaigns"},
	"POST /staff/campaigns/{id}/delete":       {none: "campaigns"},
	"POST /staff/campaigns/{id}/test":         {none: "campaigns: the test goes to the staff member"},
	"GET /staff/campaigns/{id}/preview":       {none: "campaigns"},
	"GET /api/v1/staff/campaigns":             {none: "campaigns"},
	"POST /api/v1/staff/campaigns":            {none: "campaigns"},
	"GET /api/v1/staff/campaigns/{id}":        {none: "campaigns"},
	"PATCH /api/v1/staff/campaigns/{id}":      {none: "campaigns"},
	"DELETE /api/v1/staff/campaigns/{id}":     {none: "campaigns"},
	"POST /api/v1/staff/campaigns/{id}/test":  {none: "campaigns: the test goes to the staff member"},
	"POST /api/v1/staff/campaigns/{id}/send":  {none: "campaigns"},
	"POST /api/v1/staff/subscribers/import":   {none: "an import: counts of what marketing sent"},
}

func isStaffRoute(pattern string) bool {
	_, path, _ := strings.Cut(pattern, " ")
	return path == "/staff" || strings.HasPrefix(path, "/staff/") || strings.HasPrefix(path, "/api/v1/staff/")
}

func staffReadCount(t *testing.T, h *apptest.Harness) int {
	t.Helper()
	var n int
	if err := h.App.DB().QueryRowContext(context.Background(), `SELECT count(*) FROM staff_reads`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestStaffReadsRecorded walks every staff route the site registers: each must be
// classified, and each that shows member data must record a read when the DPO opens it.
func TestStaffReadsRecorded(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := t.Context()
		routes := h.App.Routes()
		for p, c := range staffReads {
			if !slices.Contains(routes, p) {
				t.Errorf("%s is classified but not registered", p)
			}
			if !c.records && c.none == "" {
				t.Errorf("%s: a route without records needs the reason", p)
			}
		}
		var walk []string
		for _, p := range routes {
			if !isStaffRoute(p) {
				continue
			}
			c, ok := staffReads[p]
			if !ok {
				t.Errorf("staff route %s is not classified in staffReads: does it show member data (record it), or not (say why)?", p)
				continue
			}
			if c.records {
				walk = append(walk, p)
			}
		}

		// The data: a member with a file, a consent conflict, a complaint, a
		// rectification request and a hold; a visitor's request with a document.
		dpoID, dpo := h.Member("walk.dpo@example.org", pw, map[string]any{"name": "Dana Dpo"})
		if err := h.GrantStaff(ctx, dpoID, "dpo"); err != nil {
			t.Fatal(err)
		}
		memberID, member := h.Member("walk.member@example.org", pw, map[string]any{"name": "Walter Member"})
		vals := map[string]string{"{member}": memberID}
		r := upload(h, member, "walk.txt", []byte("walter's file"), false)
		if r.Status != http.StatusCreated {
			t.Fatalf("upload = %d %s", r.Status, r.Body)
		}
		vals["{file}"] = r.JSON()["id"].(string)
		if r := h.Do("PUT", "/api/v1/me/consents", `{"choices":{"partner_sharing":true}}`, member); r.Status != 200 {
			t.Fatalf("opt-in = %d %s", r.Status, r.Body)
		}
		get(h, member, "/api/v1/me", map[string]string{"Sec-GPC": "1"}) // a conflict with the opt-in
		for key, right := range map[string]string{"{request}": "complaint", "{rectification}": "rectification"} {
			r := h.Do("POST", "/api/v1/me/requests", map[string]any{"right": right, "details": "walk " + right}, member)
			if r.Status != http.StatusCreated {
				t.Fatalf("%s = %d %s", right, r.Status, r.Body)
			}
			vals[key] = r.JSON()["id"].(string)
		}
		r = h.Do("POST", "/api/v1/staff/holds", map[string]any{"subject": memberID, "holders": []string{"requests"}, "reason": "litigation"}, dpo)
		if r.Status != http.StatusCreated {
			t.Fatalf("hold = %d %s", r.Status, r.Body)
		}
		vals["{hold}"] = r.JSON()["id"].(string)
		if r := sendVisitor(h, map[string]string{"name": "Vera Visitor", "email": "walk.visitor@example.org",
			"held_email": "walk.member@example.org", "right": "access"}, &doc{"id.pdf", "application/pdf", pdfDoc}); r.Status != 202 {
			t.Fatalf("visitor = %d %s", r.Status, r.Body)
		}
		link := h.WaitLink("walk.visitor@example.org", "/requests/confirm?token=")
		c := h.Do("POST", "/api/v1/requests/confirm", map[string]string{"token": link}, "")
		if c.Status != 200 {
			t.Fatalf("confirm = %d %s", c.Status, c.Body)
		}
		vals["{visitor}"] = c.JSON()["id"].(string)

		// The identity decision moves the visitor's request on: it runs last of those
		// that open the visitor's request.
		slices.SortStableFunc(walk, func(a, b string) int {
			return boolInt(strings.HasSuffix(a, "/identity")) - boolInt(strings.HasSuffix(b, "/identity"))
		})
		for _, p := range walk {
			c := staffReads[p]
			method, path, _ := strings.Cut(p, " ")
			if c.path != "" {
				path = c.path
			}
			for k, v := range vals {
				path = strings.ReplaceAll(path, k, v)
			}
			before := staffReadCount(t, h)
			var body any
			if c.body != "" {
				body = c.body
			}
			r := h.Do(method, path, body, dpo)
			if r.Status != http.StatusOK {
				t.Errorf("%s (%s) = %d %s", p, path, r.Status, r.Body)
				continue
			}
			if after := staffReadCount(t, h); after <= before {
				t.Errorf("%s showed member data and recorded no staff read (%d before, %d after)", p, before, after)
			}
		}
		// The member sees the DPO's reads.
		reads := jsonOK(t, h.Do("GET", "/api/v1/me/staff-access", nil, member))["reads"].([]any)
		if len(reads) == 0 {
			t.Fatal("the member sees no staff read")
		}
		first := reads[0].(map[string]any)
		if first["role"] != "dpo" || first["name"] != "Dana Dpo" || first["what"] == "" || first["why"] == "" {
			t.Errorf("a read as the member sees it = %v", first)
		}
	})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// grantSetup makes a support agent, a DPO and a member with a file.
func grantSetup(t *testing.T, h *apptest.Harness, tag string) (supportTok, dpoTok, memberID, memberTok, fileID string) {
	t.Helper()
	ctx := context.Background()
	supportID, supportTok := h.Member(tag+".support@example.org", pw, map[string]any{"name": "Sam Support"})
	if err := h.GrantStaff(ctx, supportID, "support"); err != nil {
		t.Fatal(err)
	}
	dpoID, dpoTok := h.Member(tag+".dpo@example.org", pw, map[string]any{"name": "Dana Dpo"})
	if err := h.GrantStaff(ctx, dpoID, "dpo"); err != nil {
		t.Fatal(err)
	}
	memberID, memberTok = h.Member(tag+".member@example.org", pw, map[string]any{"name": "Mia Member", "phone": "+49 30 1234567"})
	r := upload(h, memberTok, "contract.txt", []byte("mia's contract"), false)
	if r.Status != http.StatusCreated {
		t.Fatalf("upload = %d %s", r.Status, r.Body)
	}
	return supportTok, dpoTok, memberID, memberTok, r.JSON()["id"].(string)
}

func askGrant(t *testing.T, h *apptest.Harness, tok, member string, scopes []string, reason string, hours int) string {
	t.Helper()
	r := h.Do("POST", "/api/v1/staff/grants", map[string]any{"member": member, "scopes": scopes, "reason": reason, "hours": hours}, tok)
	if r.Status != http.StatusCreated {
		t.Fatalf("ask grant = %d %s", r.Status, r.Body)
	}
	return r.JSON()["id"].(string)
}

func decide(t *testing.T, h *apptest.Harness, path, tok string, approve bool, want int) {
	t.Helper()
	if r := h.Do("POST", path, fmt.Sprintf(`{"approve":%v}`, approve), tok); r.Status != want {
		t.Fatalf("POST %s = %d %s, want %d", path, r.Status, r.Body, want)
	}
}

// TestAccessGrants: support is refused without a grant, and with an expired, revoked
// or refused one; the member approves, support reads what the grant covers and no
// more, and the member sees the read; the DPO reads without one, recorded too.
func TestAccessGrants(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		support, dpo, memberID, member, fileID := grantSetup(t, h, "grant")
		view := "/api/v1/staff/members/" + memberID
		page := "/staff/members/" + memberID
		fileURL := view + "/files/" + fileID
		refused := func(when string) {
			t.Helper()
			for _, p := range []string{view, page, fileURL, page + "/files/" + fileID} {
				if r := h.Do("GET", p, nil, support); r.Status != http.StatusForbidden {
					t.Errorf("%s: support GET %s = %d, want 403", when, p, r.Status)
				}
			}
		}
		before := staffReadCount(t, h)
		refused("without a grant")
		if n := staffReadCount(t, h); n != before {
			t.Errorf("refused reads recorded %d reads", n-before)
		}

		// Bad input: a clear error naming the field, nothing stored.
		for _, c := range []struct {
			body  map[string]any
			field string
		}{
			{map[string]any{"member": "", "scopes": []string{"profile"}, "reason": "x", "hours": 1}, "member"},
			{map[string]any{"member": "nobody@example.org", "scopes": []string{"profile"}, "reason": "x", "hours": 1}, "member"},
			{map[string]any{"member": memberID, "scopes": []string{"everything"}, "reason": "x", "hours": 1}, "scopes"},
			{map[string]any{"member": memberID, "scopes": []string{}, "reason": "x", "hours": 1}, "scopes"},
			{map[string]any{"member": memberID, "scopes": []string{"profile"}, "reason": " ", "hours": 1}, "reason"},
			{map[string]any{"member": memberID, "scopes": []string{"profile"}, "reason": "x", "hours": 0}, "hours"},
			{map[string]any{"member": memberID, "scopes": []string{"profile"}, "reason": "x", "hours": 721}, "hours"},
		} {
			r := h.Do("POST", "/api/v1/staff/grants", c.body, support)
			if f, _ := r.ErrorField(); r.Status != 400 || f != c.field {
				t.Errorf("ask %v = %d %s, want 400 on %s", c.body, r.Status, r.Body, c.field)
			}
		}
		if gs := jsonOK(t, h.Do("GET", "/api/v1/me/staff-access", nil, member))["grants"].([]any); len(gs) != 0 {
			t.Fatalf("refused asks stored grants: %v", gs)
		}

		// Asked, pending: still refused. The member sees it, and approves.
		id := askGrant(t, h, support, "grant.member@example.org", []string{"profile", "files"}, "Ticket #4711: login trouble", 2)
		refused("with a pending grant")
		got := jsonOK(t, h.Do("GET", "/api/v1/me/staff-access", nil, member))
		g := got["grants"].([]any)[0].(map[string]any)
		if g["state"] != "pending" || g["staff"] != "support: Sam Support" || g["reason"] != "Ticket #4711: login trouble" {
			t.Errorf("the member's pending grant = %v", g)
		}
		decide(t, h, "/api/v1/staff/grants/"+id+"/decision", dpo, true, http.StatusForbidden) // the member approves here (default)
		decide(t, h, "/api/v1/me/staff-access/"+id+"/decision", support, true, http.StatusNotFound)
		decide(t, h, "/api/v1/me/staff-access/"+id+"/decision", member, true, http.StatusOK)
		decide(t, h, "/api/v1/me/staff-access/"+id+"/decision", member, true, http.StatusConflict)

		// Support reads what the grant covers, and only that.
		m := jsonOK(t, h.Do("GET", view, nil, support))
		if p, _ := m["profile"].(map[string]any); p["name"] != "Mia Member" {
			t.Errorf("profile = %v", m["profile"])
		}
		if m["consents"] != nil || m["requests"] != nil {
			t.Errorf("support saw what the grant does not cover: consents %v requests %v", m["consents"], m["requests"])
		}
		if fs, _ := m["files"].([]any); len(fs) != 1 {
			t.Errorf("files = %v", m["files"])
		}
		if r := h.Do("GET", page, nil, support); r.Status != 200 || !strings.Contains(string(r.Body), "Mia Member") {
			t.Errorf("page = %d", r.Status)
		}
		if r := h.Do("GET", fileURL, nil, support); r.Status != 200 || string(r.Body) != "mia's contract" {
			t.Errorf("file = %d %q", r.Status, r.Body)
		}
		// The download is in the member's file access log, not by them.
		log := jsonOK(t, h.Do("GET", "/api/v1/me/file-access", nil, member))
		foundStaff := false
		for _, e := range log["access"].([]any) {
			e := e.(map[string]any)
			if e["action"] == "download" && e["by_owner"] == false {
				foundStaff = true
			}
		}
		if !foundStaff {
			t.Errorf("the staff download is not in the member's access log as not by them: %v", log)
		}

		// The member sees each read: who (role, name), when, what, why.
		reads := jsonOK(t, h.Do("GET", "/api/v1/me/staff-access", nil, member))["reads"].([]any)
		if len(reads) != 3 {
			t.Fatalf("reads = %d %v, want 3 (API view, page view, download)", len(reads), reads)
		}
		for _, rd := range reads {
			rd := rd.(map[string]any)
			if rd["role"] != "support" || rd["name"] != "Sam Support" || rd["why"] != "Ticket #4711: login trouble" || rd["at"] == "" {
				t.Errorf("read = %v", rd)
			}
		}
		if w := reads[0].(map[string]any)["what"]; w != "file download: contract.txt" {
			t.Errorf("newest read = %v", w)
		}
		if r := h.Do("GET", "/account/access", nil, member); r.Status != 200 || !strings.Contains(string(r.Body), "Support: Sam Support") ||
			!strings.Contains(string(r.Body), "Ticket #4711") {
			t.Errorf("the member's page = %d, want the read with role and name", r.Status)
		}

		// Expired: refused at read time.
		h.Clock.Advance(2*time.Hour + time.Second)
		// Past the staff sessions' idle timeout: support and the DPO gave a code again.
		for _, email := range []string{"grant.support@example.org", "grant.dpo@example.org"} {
			a, err := h.App.Accounts().Lookup(t.Context(), email)
			if err != nil {
				t.Fatal(err)
			}
			h.KeepStaff(t.Context(), a.ID)
		}
		refused("with an expired grant")

		// Revoked by the member: refused.
		id = askGrant(t, h, support, memberID, []string{"profile"}, "Ticket #4712", 24)
		decide(t, h, "/api/v1/me/staff-access/"+id+"/decision", member, true, http.StatusOK)
		if r := h.Do("GET", view, nil, support); r.Status != 200 {
			t.Fatalf("with a new grant = %d", r.Status)
		}
		if r := h.Do("POST", "/api/v1/me/staff-access/"+id+"/revoke", nil, member); r.Status != 200 {
			t.Fatalf("revoke = %d %s", r.Status, r.Body)
		}
		refused("with a revoked grant")

		// Refused by the member: refused.
		id = askGrant(t, h, support, memberID, []string{"profile"}, "Ticket #4713", 24)
		decide(t, h, "/api/v1/me/staff-access/"+id+"/decision", member, false, http.StatusOK)
		refused("with a refused grant")

		// The DPO reads without a grant, recorded as a dpo review.
		n := len(jsonOK(t, h.Do("GET", "/api/v1/me/staff-access", nil, member))["reads"].([]any))
		m = jsonOK(t, h.Do("GET", view, nil, dpo))
		if len(m["shown"].([]any)) != 4 {
			t.Errorf("the DPO sees %v, want every scope", m["shown"])
		}
		reads = jsonOK(t, h.Do("GET", "/api/v1/me/staff-access", nil, member))["reads"].([]any)
		if len(reads) != n+1 || reads[0].(map[string]any)["why"] != "dpo review" || reads[0].(map[string]any)["role"] != "dpo" {
			t.Errorf("the DPO's read = %v", reads[0])
		}
	})
}

// TestGrantsApprovedByDPO: with --grant-approver=dpo the member cannot approve, the
// DPO does; and the member's erasure removes their grants and reads.
func TestGrantsApprovedByDPO(t *testing.T) {
	apptest.EachDatabase(t, func(t *testing.T, dbURL string) {
		h := apptest.Start(t, dbURL, "--grant-approver=dpo")
		support, dpo, memberID, member, _ := grantSetup(t, h, "dpoapp")
		id := askGrant(t, h, support, memberID, []string{"consents"}, "Ticket #9", 4)
		decide(t, h, "/api/v1/me/staff-access/"+id+"/decision", member, true, http.StatusForbidden)
		pending := jsonOK(t, h.Do("GET", "/api/v1/staff/grants", nil, dpo))["pending"].([]any)
		if len(pending) != 1 || pending[0].(map[string]any)["id"] != id {
			t.Fatalf("the DPO's pending grants = %v", pending)
		}
		decide(t, h, "/api/v1/staff/grants/"+id+"/decision", dpo, true, http.StatusOK)
		m := jsonOK(t, h.Do("GET", "/api/v1/staff/members/"+memberID, nil, support))
		if m["consents"] == nil || m["profile"] != nil {
			t.Errorf("support under a consents grant saw %v", m)
		}
		// Erased: nothing of the member's grants and reads is left.
		eraseMember(t, h, member, "done")
		for _, table := range []string{"access_grants", "staff_reads"} {
			var n int
			if err := h.App.DB().QueryRowContext(t.Context(), `SELECT count(*) FROM `+table+` WHERE subject_id = $1`, memberID).Scan(&n); err != nil || n != 0 {
				t.Errorf("%s rows of the erased member = %d (%v)", table, n, err)
			}
		}
	})
}
