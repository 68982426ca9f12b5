package api

import (
	"net/http"
	"time"

	"steward/internal/account"
	"steward/internal/processors"
	"steward/internal/ropa"
	"steward/internal/server"
)

func (a *API) registerProcessors(mux server.Router) {
	role := processors.Roles
	mux.HandleFunc("GET /api/v1/processors", a.publicProcessors)
	mux.HandleFunc("GET /api/v1/staff/processors", a.staff(a.staffProcessors, role...))
	mux.HandleFunc("POST /api/v1/staff/processors", a.staff(a.addProcessor, role...))
	mux.HandleFunc("GET /api/v1/staff/processors/{key}", a.staff(a.staffProcessor, role...))
	mux.HandleFunc("PUT /api/v1/staff/processors/{key}", a.staff(a.editProcessor, role...))
	mux.HandleFunc("POST /api/v1/staff/processors/{key}/retire", a.staff(a.processorAction("retire"), role...))
	mux.HandleFunc("POST /api/v1/staff/processors/{key}/approve", a.staff(a.sensitive(a.processorAction("approve")), role...))
	mux.HandleFunc("POST /api/v1/staff/processors/{key}/reject", a.staff(a.processorAction("reject"), role...))
	mux.HandleFunc("GET /api/v1/staff/ropa", a.staff(a.ropa, role...))
}

type regionResponse struct {
	Name      string   `json:"name"`
	Countries []string `json:"countries"`
}

func (a *API) region() regionResponse {
	r := a.Processors.Region()
	return regionResponse{Name: r.Name, Countries: r.Countries}
}

// publicProcessor is a processor as the public list shows it.
type publicProcessor struct {
	Key           string   `json:"key"`
	Name          string   `json:"name"`
	Service       string   `json:"service"`
	Purposes      []string `json:"purposes"`
	Categories    []string `json:"categories"`
	Country       string   `json:"country"`
	OutsideRegion bool     `json:"outside_region"`
	Transfer      string   `json:"transfer_safeguard,omitempty"`
	Safeguard     string   `json:"safeguard"`
}

// publicProcessors is the public list of the processors in force, and the region.
func (a *API) publicProcessors(w http.ResponseWriter, r *http.Request) {
	list, err := a.Processors.Current(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]publicProcessor, len(list))
	for i, p := range list {
		out[i] = publicProcessor{Key: p.Key, Name: p.Name, Service: p.Service, Purposes: p.Purposes, Categories: p.Categories, Country: p.Country,
			OutsideRegion: a.Processors.Outside(p), Transfer: p.Transfer, Safeguard: p.Safeguard}
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"region": a.region(), "processors": out})
}

type processorEntry struct {
	processors.Processor
	OutsideRegion bool                  `json:"outside_region"`
	Proposed      *processors.Processor `json:"proposed,omitempty"`
	ProposedBy    string                `json:"proposed_by,omitempty"`
	ProposedAt    time.Time             `json:"proposed_at,omitzero"`
	CreatedAt     time.Time             `json:"created_at"`
	UpdatedAt     time.Time             `json:"updated_at"`
}

func (a *API) toEntry(e processors.Entry) processorEntry {
	return processorEntry{Processor: e.Processor, OutsideRegion: a.Processors.Outside(e.Processor), Proposed: e.Proposed, ProposedBy: e.ProposedBy,
		ProposedAt: e.ProposedAt, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt}
}

type changeResponse struct {
	Action string                `json:"action"`
	By     string                `json:"by,omitempty"`
	Old    *processors.Processor `json:"old,omitempty"`
	New    *processors.Processor `json:"new,omitempty"`
	At     time.Time             `json:"at"`
}

func (a *API) staffProcessors(w http.ResponseWriter, r *http.Request, _ account.Session) {
	list, err := a.Processors.List(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	transfers, err := a.Processors.AllTransfers(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]processorEntry, len(list))
	for i, e := range list {
		out[i] = a.toEntry(e)
	}
	safeguards := make([]map[string]string, len(processors.Safeguards))
	for i, s := range processors.Safeguards {
		safeguards[i] = map[string]string{"key": s.Key, "name": s.Name}
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"region": a.region(), "processors": out, "transfers": transfers, "safeguards": safeguards})
}

func (a *API) staffProcessor(w http.ResponseWriter, r *http.Request, _ account.Session) {
	e, err := a.Processors.Get(r.Context(), r.PathValue("key"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	hist, err := a.Processors.History(r.Context(), e.Key)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	changes := make([]changeResponse, len(hist))
	for i, c := range hist {
		changes[i] = changeResponse{Action: c.Action, By: c.By, Old: c.Old, New: c.New, At: c.At}
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"processor": a.toEntry(e), "history": changes})
}

// processorRequest is a processor as staff send it.
type processorRequest struct {
	Key        string   `json:"key"`
	Name       string   `json:"name"`
	Service    string   `json:"service"`
	Purposes   []string `json:"purposes"`
	Categories []string `json:"categories"`
	Country    string   `json:"country"`
	Transfer   string   `json:"transfer"`
	Safeguard  string   `json:"safeguard"`
	Contract   string   `json:"contract"`
	NotifyURL  string   `json:"notify_url"`
	Sale       bool     `json:"sale"`
}

func (p processorRequest) processor() processors.Processor {
	return processors.Processor{Key: p.Key, Name: p.Name, Service: p.Service, Purposes: p.Purposes, Categories: p.Categories, Country: p.Country,
		Transfer: p.Transfer, Safeguard: p.Safeguard, Contract: p.Contract, NotifyURL: p.NotifyURL, Sale: p.Sale}
}

func (a *API) actor(r *http.Request, sess account.Session) processors.Actor {
	return processors.Actor{ID: sess.AccountID, IP: a.ClientIP(r)}
}

// addProcessor adds a processor: 201 when in force, 202 when it waits for a second
// approval (a sale).
func (a *API) addProcessor(w http.ResponseWriter, r *http.Request, sess account.Session) {
	var req processorRequest
	if err := server.DecodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	e, err := a.Processors.Add(r.Context(), a.actor(r, sess), req.processor())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/staff/processors/"+e.Key)
	status := http.StatusCreated
	if e.Proposed != nil {
		status = http.StatusAccepted
	}
	server.WriteJSON(w, status, a.toEntry(e))
}

// editProcessor changes a processor: 200, or 202 when the change waits for a second
// approval (marking it a sale).
func (a *API) editProcessor(w http.ResponseWriter, r *http.Request, sess account.Session) {
	var req processorRequest
	if err := server.DecodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	e, err := a.Processors.Edit(r.Context(), a.actor(r, sess), r.PathValue("key"), req.processor())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	status := http.StatusOK
	if e.Proposed != nil {
		status = http.StatusAccepted
	}
	server.WriteJSON(w, status, a.toEntry(e))
}

func (a *API) processorAction(action string) func(http.ResponseWriter, *http.Request, account.Session) {
	return func(w http.ResponseWriter, r *http.Request, sess account.Session) {
		do := map[string]func(*http.Request, processors.Actor, string) (processors.Entry, error){
			"retire": func(r *http.Request, by processors.Actor, k string) (processors.Entry, error) {
				return a.Processors.Retire(r.Context(), by, k)
			},
			"approve": func(r *http.Request, by processors.Actor, k string) (processors.Entry, error) {
				return a.Processors.Approve(r.Context(), by, k)
			},
			"reject": func(r *http.Request, by processors.Actor, k string) (processors.Entry, error) {
				return a.Processors.Reject(r.Context(), by, k)
			},
		}[action]
		e, err := do(r, a.actor(r, sess), r.PathValue("key"))
		if err != nil {
			a.fail(w, r, err)
			return
		}
		server.WriteJSON(w, http.StatusOK, a.toEntry(e))
	}
}

// ropa writes the records of processing activities in the format asked (JSON by
// default).
func (a *API) ropa(w http.ResponseWriter, r *http.Request, _ account.Session) {
	format := r.URL.Query().Get("format")
	if format == "" {
		format = "json"
	}
	if err := ropa.CheckFormat(format); err != nil {
		a.fail(w, r, err)
		return
	}
	rec, err := a.Records.Build(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", ropa.ContentType(format))
	w.Header().Set("Content-Disposition", `attachment; filename="records-of-processing.`+ropa.Extension(format)+`"`)
	if err := rec.Write(w, format); err != nil {
		a.Log.ErrorContext(r.Context(), "ropa: writing the answer", "err", err) // the status is sent: only the log can tell
	}
}
