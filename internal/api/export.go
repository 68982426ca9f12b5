package api

import (
	"fmt"
	"io"
	"net/http"
	"time"

	"steward/internal/datamap"
	"steward/internal/rights"
)

// WriteExport streams the subject's portability archive: files of any size pass
// through without being held in memory. A failure before anything is written is an
// error answer; a failure half-way aborts the connection, so the client sees a broken
// download rather than a truncated archive that looks whole.
func WriteExport(w http.ResponseWriter, r *http.Request, rs *rights.Service, subj datamap.Subject, now time.Time,
	fail func(http.ResponseWriter, *http.Request, error)) {
	cw := &countingWriter{w: w, before: func() {
		w.Header().Set("Content-Type", "application/zip")
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="steward-export-%s.zip"`, now.UTC().Format("20060102-150405")))
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
	}}
	if err := rs.Export(r.Context(), subj, cw); err != nil {
		if cw.n == 0 {
			fail(w, r, err)
			return
		}
		panic(http.ErrAbortHandler)
	}
}

// countingWriter sets the headers before the first byte and counts what it wrote.
type countingWriter struct {
	w      io.Writer
	n      int64
	before func()
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.n == 0 && c.before != nil {
		c.before()
		c.before = nil
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
