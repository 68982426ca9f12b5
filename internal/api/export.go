package api

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"steward/internal/datamap"
	"steward/internal/rights"
)

// WriteExport answers with the subject's portability archive. The archive is built in
// memory first so that a failure half-way gives an error, not a truncated zip (the
// files holder will stream instead).
func WriteExport(w http.ResponseWriter, r *http.Request, rs *rights.Service, subj datamap.Subject, now time.Time,
	fail func(http.ResponseWriter, *http.Request, error)) {
	var buf bytes.Buffer
	if err := rs.Export(r.Context(), subj, &buf); err != nil {
		fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="steward-export-%s.zip"`, now.UTC().Format("20060102-150405")))
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(buf.Bytes())
}
