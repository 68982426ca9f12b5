package web

import (
	"net/http"
	"net/url"
	"slices"
	"time"

	"steward/internal/account"
	"steward/internal/apperr"
	"steward/internal/holds"
)

// holdRow is a legal hold as pages show it.
type holdRow struct {
	ID       string
	Subject  string // staff pages only
	Holders  []heldHolder
	Reason   string
	Until    time.Time // zero: until released
	State    string
	InForce  bool
	PlacedAt time.Time
	Released time.Time
}

// heldHolder is one holder a hold keeps, with what it holds in words.
type heldHolder struct {
	Name        string
	Description string
	Checked     bool // the place form: ticked
}

var holdStateNames = map[string]string{holds.InForce: "in force", holds.Released: "released", holds.Expired: "ended"}

func (p *Pages) holdRows(list []holds.Hold, staff bool) []holdRow {
	now := p.o.Now()
	out := make([]holdRow, 0, len(list))
	for _, h := range list {
		row := holdRow{ID: h.ID, Reason: h.Reason, Until: h.Until, State: holdStateNames[h.State(now)], InForce: h.InForce(now),
			PlacedAt: h.PlacedAt, Released: h.ReleasedAt}
		if staff {
			row.Subject = h.SubjectID
		}
		for _, n := range h.Holders {
			// The member reads the same words as the erasure's steps.
			words := stepNames[n]
			if staff || words == "" {
				words = p.o.Holds.Describe(n)
			}
			row.Holders = append(row.Holders, heldHolder{Name: n, Description: words})
		}
		out = append(out, row)
	}
	return out
}

// staffHoldsView is the DPO's page of holds: the place form and every hold.
type staffHoldsView struct {
	Fields   []field // subject, reason, until
	Holdable []heldHolder
	HoldErr  string // the holders' error
	Error    string
	Notice   string
	Holds    []holdRow
}

func (p *Pages) staffHolds(w http.ResponseWriter, r *http.Request, _ account.Session) {
	notice := map[string]string{"placed": "The hold is placed. An erasure of the member now keeps what it names.",
		"released": "The hold is released. What it kept of an erased member is erased shortly."}[r.URL.Query().Get("done")]
	p.renderStaffHolds(w, r, http.StatusOK, staffHoldsView{Notice: notice}, holds.Placement{}, "")
}

func holdFields(pl holds.Placement, until string) []field {
	return []field{
		{Name: "subject", Label: "Member", Need: "required", Type: "text", Value: pl.Subject, Hint: "The member's account id or email address."},
		{Name: "reason", Label: "Reason", Need: "required", Type: "textarea", Rows: 3, Value: pl.Reason,
			Hint: "The legal obligation or claim that requires the data. The member is told."},
		{Name: "until", Label: "Until", Need: "optional", Type: "date", Value: until, Hint: "The last day of the hold. Empty: until you release it."},
	}
}

func (p *Pages) renderStaffHolds(w http.ResponseWriter, r *http.Request, status int, v staffHoldsView, pl holds.Placement, until string) {
	if v.Fields == nil {
		v.Fields = holdFields(pl, until)
	}
	for _, d := range p.o.Holds.Holdable() {
		v.Holdable = append(v.Holdable, heldHolder{Name: d.Name, Description: d.Description, Checked: slices.Contains(pl.Holders, d.Name)})
	}
	list, err := p.o.Holds.List(r.Context(), "")
	if err != nil {
		p.fail(w, r, err)
		return
	}
	subjects := make([]string, len(list))
	for i, h := range list {
		subjects[i] = h.SubjectID
	}
	if err := p.o.RecordReads(r, staffSession(r), "legal holds", "legal hold review", subjects...); err != nil {
		p.fail(w, r, err)
		return
	}
	v.Holds = p.holdRows(list, true)
	p.render(w, r, status, "staff-holds", "Legal holds", true, v)
}

func (p *Pages) placeHold(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	pl := holds.Placement{Subject: r.PostFormValue("subject"), Holders: r.PostForm["holders"], Reason: r.PostFormValue("reason")}
	until := r.PostFormValue("until")
	var err error
	if pl.Until, err = holds.ParseUntil(until); err == nil {
		_, err = p.o.Holds.Place(r.Context(), holds.Actor{ID: sess.AccountID, IP: p.o.ClientIP(r)}, pl)
	}
	if err != nil {
		v := staffHoldsView{Fields: holdFields(pl, until)}
		st := p.formError(w, r, v.Fields, &v.Error, err)
		if e, ok := apperr.As(err); ok && e.Field == "holders" {
			v.HoldErr, v.Error = sentence("Held data", e.Message), "Please correct the field marked below."
		}
		p.renderStaffHolds(w, r, st, v, pl, until)
		return
	}
	redirect(w, r, "/staff/holds?done=placed")
}

// releaseHoldView asks the DPO to confirm a release.
type releaseHoldView struct {
	holdRow
	Erasing bool // an erasure waits on the holds of the member
}

func (p *Pages) releaseHoldForm(w http.ResponseWriter, r *http.Request, _ account.Session) {
	h, err := p.o.Holds.Get(r.Context(), r.PathValue("hold"))
	if err != nil {
		p.fail(w, r, err)
		return
	}
	if !h.InForce(p.o.Now()) {
		p.fail(w, r, apperr.New(apperr.Conflict, "hold_ended", "the hold has already ended"))
		return
	}
	_, erasing, err := p.o.Rights.Holding(r.Context(), h.SubjectID)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	if err := p.o.RecordReads(r, staffSession(r), "legal holds", "legal hold review", h.SubjectID); err != nil {
		p.fail(w, r, err)
		return
	}
	p.render(w, r, http.StatusOK, "staff-hold-release", "Release the hold?", true, releaseHoldView{holdRow: p.holdRows([]holds.Hold{h}, true)[0], Erasing: erasing})
}

func (p *Pages) releaseHold(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	if _, err := p.o.Holds.Release(r.Context(), holds.Actor{ID: sess.AccountID, IP: p.o.ClientIP(r)}, r.PathValue("hold")); err != nil {
		p.fail(w, r, err)
		return
	}
	redirect(w, r, "/staff/holds?done="+url.QueryEscape("released"))
}
