package web

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"steward/internal/account"
	"steward/internal/retention"
)

// retentionView is the page of the retention rules: each rule with its period and its
// last run, and the last runs with what each rule removed.
type retentionView struct {
	Notice string
	Error  string
	Rules  []retentionRuleRow
	Runs   []retentionRunRow
}

type retentionRuleRow struct {
	Name, Holder, Removes, Flag string
	Period                      string
	On                          bool
	Last                        *retention.RuleRun
}

type retentionRunRow struct {
	ID        string
	Source    string
	StartedAt time.Time
	Removed   int
	Rules     []retention.RuleRun
}

// period says a rule's period in days where it is whole days, else as Go writes it.
func period(d time.Duration) string {
	switch {
	case d == 0:
		return "at once"
	case d%(24*time.Hour) == 0:
		n := int(d / (24 * time.Hour))
		if n == 1 {
			return "1 day"
		}
		return strconv.Itoa(n) + " days"
	}
	return strings.TrimSuffix(strings.TrimSuffix(d.String(), "0s"), "0m")
}

func (p *Pages) staffRetention(w http.ResponseWriter, r *http.Request, _ account.Session) {
	v := retentionView{}
	if r.URL.Query().Get("done") == "ran" {
		v.Notice = "The rules ran. What each removed is in the first run below."
	}
	p.renderRetention(w, r, http.StatusOK, v)
}

func (p *Pages) renderRetention(w http.ResponseWriter, r *http.Request, status int, v retentionView) {
	last, err := p.o.Retention.Last(r.Context())
	if err != nil {
		p.fail(w, r, err)
		return
	}
	runs, err := p.o.Retention.Runs(r.Context(), 10)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	for _, x := range p.o.Retention.Rules() {
		row := retentionRuleRow{Name: x.Name, Holder: x.Holder, Removes: x.Removes, Flag: x.Flag, Period: period(x.Period), On: !x.Off}
		if rr, ok := last[x.Name]; ok {
			row.Last = &rr
		}
		v.Rules = append(v.Rules, row)
	}
	for _, run := range runs {
		v.Runs = append(v.Runs, retentionRunRow{ID: run.ID, Source: run.Source, StartedAt: run.StartedAt, Removed: run.Removed(), Rules: run.Rules})
	}
	p.render(w, r, status, "staff-retention", "Retention", true, v)
}

func (p *Pages) runRetention(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	run, err := p.o.Retention.Run(r.Context(), retention.Actor{ID: sess.AccountID, IP: p.o.ClientIP(r), Source: retention.ByStaff})
	if err != nil {
		if len(run.Rules) == 0 {
			p.fail(w, r, err)
			return
		}
		p.renderRetention(w, r, http.StatusOK, retentionView{Error: "A rule failed; its error is shown below. The other rules did their work."})
		return
	}
	redirect(w, r, "/staff/retention?done=ran")
}
