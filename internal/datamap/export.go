package datamap

import (
	"archive/zip"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"steward/internal/store"
)

// Manifest describes a portability archive: who it is about, when it was made, and
// for every holder what it keeps, why, on what basis and for how long.
type Manifest struct {
	Format      string           `json:"format"`
	SubjectID   string           `json:"subject_id"`
	GeneratedAt time.Time        `json:"generated_at"`
	Holders     []ManifestHolder `json:"holders"`
}

// ManifestHolder is one holder's entry in the manifest.
type ManifestHolder struct {
	Name        string            `json:"name"`
	Description string            `json:"description"`
	Purpose     string            `json:"purpose"`
	LawfulBasis string            `json:"lawful_basis"`
	Retention   string            `json:"retention"`
	Categories  []string          `json:"categories"`
	Files       []string          `json:"files"`
	Rows        int               `json:"rows"`
	Withheld    map[string]string `json:"withheld,omitempty"`
}

// Export writes the subject's portability archive to w: a zip holding, for every
// holder, a JSON file and a CSV file per table, and a manifest.json.
func (r *Registry) Export(ctx context.Context, q store.Querier, s Subject, now time.Time, w io.Writer) error {
	zw := zip.NewWriter(w)
	m := Manifest{Format: "steward-export/1", SubjectID: s.ID, GeneratedAt: now.UTC()}
	for _, h := range r.holders {
		d := h.Declaration()
		secs, err := h.Export(ctx, q, s)
		if err != nil {
			return fmt.Errorf("datamap: export %s: %w", d.Name, err)
		}
		mh := ManifestHolder{
			Name: d.Name, Description: d.Description, Purpose: d.Purpose,
			LawfulBasis: d.LawfulBasis, Retention: d.Retention, Categories: d.Categories(),
		}
		for _, t := range d.Tables {
			for _, c := range t.Columns {
				if c.Withheld != "" {
					if mh.Withheld == nil {
						mh.Withheld = map[string]string{}
					}
					mh.Withheld[t.Name+"."+c.Name] = c.Withheld
				}
			}
		}
		doc := map[string]any{"holder": d.Name, "purpose": d.Purpose, "lawful_basis": d.LawfulBasis}
		tables := map[string][]map[string]string{}
		for _, sec := range secs {
			objs := make([]map[string]string, 0, len(sec.Rows))
			for _, row := range sec.Rows {
				o := make(map[string]string, len(row))
				for i, v := range row {
					o[sec.Columns[i]] = v
				}
				objs = append(objs, o)
			}
			tables[sec.Table] = objs
			mh.Rows += len(sec.Rows)
			name := d.Name + "/" + sec.Table + ".csv"
			if err := writeCSV(zw, name, now, sec); err != nil {
				return err
			}
			mh.Files = append(mh.Files, name)
		}
		if fe, ok := h.(FileExporter); ok {
			err := fe.ExportFiles(ctx, s, func(name string, r io.Reader) error {
				full := d.Name + "/files/" + name
				f, err := zw.CreateHeader(&zip.FileHeader{Name: full, Method: zip.Store, Modified: now.UTC()})
				if err != nil {
					return err
				}
				if _, err := io.Copy(f, r); err != nil {
					return err
				}
				mh.Files = append(mh.Files, full)
				return nil
			})
			if err != nil {
				return fmt.Errorf("datamap: export %s files: %w", d.Name, err)
			}
		}
		doc["tables"] = tables
		name := d.Name + "/" + d.Name + ".json"
		if err := writeJSON(zw, name, now, doc); err != nil {
			return err
		}
		mh.Files = append([]string{name}, mh.Files...)
		m.Holders = append(m.Holders, mh)
	}
	if err := writeJSON(zw, "manifest.json", now, m); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("datamap: export: %w", err)
	}
	return nil
}

// create adds a compressed entry dated now: zip.Writer.Create leaves the date zero,
// which unzip shows as 1979-12-31.
func create(zw *zip.Writer, name string, now time.Time) (io.Writer, error) {
	return zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: now.UTC()})
}

func writeJSON(zw *zip.Writer, name string, now time.Time, v any) error {
	f, err := create(zw, name, now)
	if err != nil {
		return fmt.Errorf("datamap: export %s: %w", name, err)
	}
	enc := json.NewEncoder(f)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("datamap: export %s: %w", name, err)
	}
	return nil
}

func writeCSV(zw *zip.Writer, name string, now time.Time, sec Section) error {
	f, err := create(zw, name, now)
	if err != nil {
		return fmt.Errorf("datamap: export %s: %w", name, err)
	}
	cw := csv.NewWriter(f)
	// A csv.Writer keeps its first error: cw.Error below reports it.
	_ = cw.Write(sec.Columns)
	for _, row := range sec.Rows {
		_ = cw.Write(neutralize(row))
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("datamap: export %s: %w", name, err)
	}
	return nil
}

// neutralize keeps a spreadsheet from running a value as a formula (CSV injection):
// a cell starting with = + - @ gets a leading apostrophe.
func neutralize(row []string) []string {
	out := row
	for i, v := range row {
		if v != "" && (v[0] == '=' || v[0] == '+' || v[0] == '-' || v[0] == '@' || v[0] == '\t' || v[0] == '\r') {
			if &out[0] == &row[0] {
				out = append([]string(nil), row...)
			}
			out[i] = "'" + v
		}
	}
	return out
}
