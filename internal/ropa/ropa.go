// Package ropa writes the records of processing activities (GDPR art. 30) from what
// the deployment already declares: the data map's holders (what is kept, why, on which
// basis, for how long), the purposes, the register of processors and the transfers
// outside the region. Nothing in it is typed by hand, so it cannot drift from the code:
// a holder, a purpose or a processor added is in the next record. It owns no table.
package ropa

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"steward/internal/apperr"
	"steward/internal/consent"
	"steward/internal/datamap"
	"steward/internal/processors"
	"steward/internal/store"
)

// Formats are the formats a record is written in.
var Formats = []string{"markdown", "csv", "json"}

// Controller names who answers for the processing.
type Controller struct {
	Name                 string `json:"name"`
	DPO                  string `json:"dpo,omitempty"`
	EURepresentative     string `json:"eu_representative,omitempty"`
	SupervisoryAuthority string `json:"supervisory_authority,omitempty"`
}

// Record is the records of processing activities.
type Record struct {
	GeneratedAt time.Time             `json:"generated_at"`
	Controller  Controller            `json:"controller"`
	Region      Region                `json:"region"`
	Purposes    []Purpose             `json:"purposes"`
	Activities  []Activity            `json:"activities"`
	Processors  []Processor           `json:"processors"`
	Transfers   []processors.Transfer `json:"transfers"`
}

// Region is where the data is stored.
type Region struct {
	Name      string   `json:"name"`
	Countries []string `json:"countries"`
}

// Purpose is one purpose of processing and who processes for it.
type Purpose struct {
	Key         string   `json:"key"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	LawfulBasis string   `json:"lawful_basis"`
	Marketing   bool     `json:"marketing"`
	Sharing     bool     `json:"sharing"`
	Processors  []string `json:"processors"` // names
}

// Activity is one holder of the data map: a processing activity, what it keeps and
// for how long.
type Activity struct {
	Holder      string   `json:"holder"`
	Description string   `json:"description"`
	Purpose     string   `json:"purpose"`
	LawfulBasis string   `json:"lawful_basis"`
	Retention   string   `json:"retention"`
	Categories  []string `json:"categories"`
	Tables      []string `json:"tables"`
}

// Processor is one processor (a recipient) of the register, retired ones included.
type Processor struct {
	Key        string   `json:"key"`
	Name       string   `json:"name"`
	Service    string   `json:"service"`
	Purposes   []string `json:"purposes"`
	Categories []string `json:"categories"`
	Country    string   `json:"country"`
	Outside    bool     `json:"outside_region"`
	Safeguard  string   `json:"safeguard"`
	Transfer   string   `json:"transfer_safeguard,omitempty"`
	Contract   string   `json:"contract,omitempty"`
	Sale       bool     `json:"sale"`
	State      string   `json:"state"`
}

// Sources are what a record is built from.
type Sources struct {
	DataMap    *datamap.Registry
	Purposes   *consent.Register
	Processors *processors.Service
	Controller Controller
	DB         *store.DB
	Now        func() time.Time
}

// Build gathers the record.
func (src Sources) Build(ctx context.Context) (Record, error) {
	q := src.DB
	reg := src.Processors.Region()
	r := Record{GeneratedAt: src.Now().UTC().Truncate(time.Second), Controller: src.Controller,
		Region: Region{Name: reg.Name, Countries: reg.Countries}}
	list, err := src.Processors.List(ctx)
	if err != nil {
		return Record{}, fmt.Errorf("ropa: %w", err)
	}
	names := map[string]string{}
	for _, e := range list {
		names[e.Key] = e.Name
		p := e.Processor
		r.Processors = append(r.Processors, Processor{Key: p.Key, Name: p.Name, Service: p.Service, Purposes: p.Purposes,
			Categories: p.Categories, Country: p.Country, Outside: src.Processors.Outside(p), Safeguard: p.Safeguard,
			Transfer: processors.SafeguardName(p.Transfer), Contract: p.Contract, Sale: p.Sale, State: p.State})
	}
	for _, pu := range src.Purposes.Purposes {
		out := Purpose{Key: pu.Key, Name: pu.Name, Description: pu.Description, LawfulBasis: string(pu.Basis), Marketing: pu.Marketing,
			Sharing: pu.Sharing, Processors: []string{}}
		for _, e := range list {
			if e.State == processors.Active && slices.Contains(e.Purposes, pu.Key) {
				out.Processors = append(out.Processors, e.Name)
			}
		}
		r.Purposes = append(r.Purposes, out)
	}
	for _, h := range src.DataMap.Holders() {
		d := h.Declaration()
		r.Activities = append(r.Activities, Activity{Holder: d.Name, Description: d.Description, Purpose: d.Purpose, LawfulBasis: d.LawfulBasis,
			Retention: d.Retention, Categories: d.Categories(), Tables: d.TableNames()})
	}
	if r.Transfers, err = src.Processors.Transfers(ctx, q, nil); err != nil {
		return Record{}, fmt.Errorf("ropa: %w", err)
	}
	return r, nil
}

// CheckFormat refuses an unknown format, naming the field.
func CheckFormat(format string) error {
	if !slices.Contains(Formats, format) {
		return apperr.Field("format", "format_unknown", "must be markdown, csv or json")
	}
	return nil
}

// ContentType and Extension of each format, for downloads.
func ContentType(format string) string {
	return map[string]string{"markdown": "text/markdown; charset=utf-8", "csv": "text/csv; charset=utf-8", "json": "application/json"}[format]
}

// Extension is the file name extension of a format.
func Extension(format string) string {
	return map[string]string{"markdown": "md", "csv": "csv", "json": "json"}[format]
}

// Write writes the record in a format.
func (r Record) Write(w io.Writer, format string) error {
	switch format {
	case "markdown":
		return r.markdown(w)
	case "csv":
		return r.csv(w)
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	return CheckFormat(format)
}

// cell keeps a value on one Markdown table row.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.Join(strings.Fields(s), " ")
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func (r Record) markdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Records of processing activities\n\nGDPR article 30. Generated %s from the deployment's data map, purposes and register of processors.\n\n",
		r.GeneratedAt.Format(time.RFC3339))
	b.WriteString("## Controller\n\n")
	fmt.Fprintf(&b, "- Name: %s\n- Data protection officer: %s\n- EU representative: %s\n- Supervisory authority: %s\n\n", cell(r.Controller.Name),
		cell(orNone(r.Controller.DPO)), cell(orNone(r.Controller.EURepresentative)), cell(orNone(r.Controller.SupervisoryAuthority)))
	fmt.Fprintf(&b, "## Storage region\n\n%s: %s\n\n", cell(r.Region.Name), strings.Join(r.Region.Countries, ", "))
	b.WriteString("## Purposes\n\n| Purpose | Description | Lawful basis | Processors |\n|---|---|---|---|\n")
	for _, p := range r.Purposes {
		fmt.Fprintf(&b, "| %s (`%s`) | %s | %s | %s |\n", cell(p.Name), p.Key, cell(p.Description), p.LawfulBasis, cell(orNone(strings.Join(p.Processors, ", "))))
	}
	b.WriteString("\n## Processing activities\n\n| Activity | Description | Purpose | Lawful basis | Data categories | Retention |\n|---|---|---|---|---|---|\n")
	for _, a := range r.Activities {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s | %s |\n", a.Holder, cell(a.Description), cell(a.Purpose), a.LawfulBasis,
			cell(strings.Join(a.Categories, ", ")), cell(a.Retention))
	}
	b.WriteString("\n## Processors (recipients)\n\n| Processor | Service | Purposes | Data categories | Country | Safeguard | Contract | Sale | State |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, p := range r.Processors {
		safeguard := p.Safeguard
		if p.Transfer != "" {
			safeguard = strings.TrimSpace(p.Transfer + "; " + p.Safeguard)
		}
		sale := "no"
		if p.Sale {
			sale = "yes"
		}
		fmt.Fprintf(&b, "| %s (`%s`) | %s | %s | %s | %s | %s | %s | %s | %s |\n", cell(p.Name), p.Key, cell(p.Service), cell(strings.Join(p.Purposes, ", ")),
			cell(strings.Join(p.Categories, ", ")), p.Country, cell(orNone(safeguard)), cell(orNone(p.Contract)), sale, p.State)
	}
	b.WriteString("\n## Transfers outside the region\n\n")
	if len(r.Transfers) == 0 {
		b.WriteString("None.\n")
	} else {
		b.WriteString("| Processor | Country | Data categories | Safeguard | Since | Until |\n|---|---|---|---|---|---|\n")
		for _, t := range r.Transfers {
			until := "in force"
			if !t.Until.IsZero() {
				until = t.Until.Format(time.DateOnly)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", cell(t.ProcessorName), t.Country, cell(strings.Join(t.Categories, ", ")),
				cell(strings.TrimSpace(t.SafeguardName+"; "+t.Details)), t.Since.Format(time.DateOnly), until)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// csv writes one row per entry, its kind first, under one header.
func (r Record) csv(w io.Writer) error {
	cw := csv.NewWriter(w)
	rows := [][]string{{"kind", "key", "name", "description", "purpose", "lawful_basis", "categories", "recipients", "country", "safeguard",
		"retention", "state", "since", "until"}}
	rows = append(rows, []string{"controller", "", r.Controller.Name, "DPO: " + r.Controller.DPO, "", "", "", "", "", "", "", "", "", ""})
	rows = append(rows, []string{"region", "", r.Region.Name, strings.Join(r.Region.Countries, " "), "", "", "", "", "", "", "", "", "", ""})
	for _, p := range r.Purposes {
		rows = append(rows, []string{"purpose", p.Key, p.Name, p.Description, p.Key, p.LawfulBasis, "", strings.Join(p.Processors, "; "), "", "", "", "", "", ""})
	}
	for _, a := range r.Activities {
		rows = append(rows, []string{"activity", a.Holder, a.Holder, a.Description, a.Purpose, a.LawfulBasis, strings.Join(a.Categories, " "), "",
			"", "", a.Retention, "", "", ""})
	}
	for _, p := range r.Processors {
		rows = append(rows, []string{"processor", p.Key, p.Name, p.Service, strings.Join(p.Purposes, " "), "", strings.Join(p.Categories, " "), "",
			p.Country, strings.TrimPrefix(p.Transfer+"; "+p.Safeguard, "; "), "", p.State, "", ""})
	}
	for _, t := range r.Transfers {
		until := ""
		if !t.Until.IsZero() {
			until = t.Until.Format(time.RFC3339)
		}
		rows = append(rows, []string{"transfer", t.Processor, t.ProcessorName, "", "", "", strings.Join(t.Categories, " "), t.ProcessorName,
			t.Country, strings.TrimPrefix(t.SafeguardName+"; "+t.Details, "; "), "", "", t.Since.Format(time.RFC3339), until})
	}
	if err := cw.WriteAll(rows); err != nil {
		return fmt.Errorf("ropa: csv: %w", err)
	}
	return nil
}
