package api

import (
	"net/http"
	"time"

	"steward/internal/account"
	"steward/internal/retention"
	"steward/internal/server"
)

func (a *API) registerRetention(mux server.Router) {
	mux.HandleFunc("GET /api/v1/staff/retention", a.staff(a.staffRetention, retention.Role))
	mux.HandleFunc("POST /api/v1/staff/retention/run", a.staff(a.sensitive(a.runRetention), retention.Role))
}

type retentionRuleResponse struct {
	Name    string `json:"name"`
	Holder  string `json:"holder"`
	Removes string `json:"removes"`
	// Period is a Go duration ("168h0m0s"); Seconds the same in seconds.
	Period  string           `json:"period"`
	Seconds int64            `json:"period_seconds"`
	On      bool             `json:"on"`
	Flag    string           `json:"flag"`
	Last    *ruleRunResponse `json:"last_run,omitempty"`
}

type ruleRunResponse struct {
	Rule       string    `json:"rule"`
	Removed    int       `json:"removed"`
	Warned     int       `json:"warned"`
	Held       int       `json:"held"`
	Error      string    `json:"error,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
}

type retentionRunResponse struct {
	ID        string            `json:"id"`
	Source    string            `json:"source"`
	StartedAt time.Time         `json:"started_at"`
	Removed   int               `json:"removed"`
	Rules     []ruleRunResponse `json:"rules"`
}

func toRuleRun(rr retention.RuleRun) ruleRunResponse {
	return ruleRunResponse{Rule: rr.Rule, Removed: rr.Removed, Warned: rr.Warned, Held: rr.Held, Error: rr.Error,
		StartedAt: rr.StartedAt, FinishedAt: rr.FinishedAt}
}

func toRetentionRun(r retention.Run) retentionRunResponse {
	out := retentionRunResponse{ID: r.ID, Source: r.Source, StartedAt: r.StartedAt, Removed: r.Removed(), Rules: []ruleRunResponse{}}
	for _, rr := range r.Rules {
		out.Rules = append(out.Rules, toRuleRun(rr))
	}
	return out
}

// staffRetention lists the rules, each with its last run, and the last runs.
func (a *API) staffRetention(w http.ResponseWriter, r *http.Request, _ account.Session) {
	last, err := a.Retention.Last(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	runs, err := a.Retention.Runs(r.Context(), 20)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	rules := []retentionRuleResponse{}
	for _, x := range a.Retention.Rules() {
		rule := retentionRuleResponse{Name: x.Name, Holder: x.Holder, Removes: x.Removes, Period: x.Period.String(),
			Seconds: int64(x.Period / time.Second), On: !x.Off, Flag: x.Flag}
		if rr, ok := last[x.Name]; ok {
			l := toRuleRun(rr)
			rule.Last = &l
		}
		rules = append(rules, rule)
	}
	out := []retentionRunResponse{}
	for _, run := range runs {
		out = append(out, toRetentionRun(run))
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"rules": rules, "runs": out})
}

// runRetention applies every rule now and answers what each removed.
func (a *API) runRetention(w http.ResponseWriter, r *http.Request, sess account.Session) {
	run, err := a.Retention.Run(r.Context(), retention.Actor{ID: sess.AccountID, IP: a.ClientIP(r), Source: retention.ByStaff})
	if err != nil && len(run.Rules) == 0 {
		a.fail(w, r, err)
		return
	}
	// A rule that failed is in the answer with its error; the others did their work.
	server.WriteJSON(w, http.StatusOK, toRetentionRun(run))
}
