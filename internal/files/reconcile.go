package files

import (
	"context"
	"errors"
	"fmt"

	"steward/internal/blob"
	"steward/internal/store"
)

// Report says what a reconciliation found and mended.
type Report struct {
	Objects         int // objects seen
	OrphanObjects   int // objects without a row, deleted
	DeadUploads     int // uploads whose node died, removed with their objects
	FinishedDeletes int // deletions cut short, finished
	LostObjects     int // ready rows whose object is gone, removed (logged as errors)
}

// ReconcileArgs is the periodic job that runs Reconcile.
type ReconcileArgs struct{}

// Kind names the job.
func (ReconcileArgs) Kind() string { return "files_reconcile" }

// Reconcile makes rows and objects agree after a crash: an object without a row is
// deleted (rows are written before objects, so it is an orphan); an upload whose lease
// ran out (or, with allUploadsDead, every upload: at start on a single node) is removed
// with its object; a deletion cut short is finished; a ready row whose object is gone
// is removed and reported.
func (s *Service) Reconcile(ctx context.Context, allUploadsDead bool) (Report, error) {
	var rep Report
	started := store.Millis(s.now())
	// Objects first, rows second: an object listed now whose row is missing later was
	// either orphaned or deleted in between; deleting it again is harmless.
	objects := map[string]bool{}
	err := s.blobs.List(ctx, objectPrefix, func(i blob.Info) error {
		objects[i.Name] = true
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("files: reconcile: %w", err)
	}
	rep.Objects = len(objects)
	type fileRow struct {
		id, object, state string
		lease, created    int64
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, object, state, lease_until, created_at FROM files`)
	if err != nil {
		return rep, fmt.Errorf("files: reconcile: %w", err)
	}
	var all []fileRow
	for rows.Next() {
		var r fileRow
		if err := rows.Scan(&r.id, &r.object, &r.state, &r.lease, &r.created); err != nil {
			rows.Close()
			return rep, fmt.Errorf("files: reconcile: %w", err)
		}
		all = append(all, r)
	}
	rows.Close()
	now := store.Millis(s.now())
	known := map[string]bool{}
	for _, r := range all {
		known[r.object] = true
		var drop bool
		switch {
		case r.state == stateUploading && (allUploadsDead || r.lease < now):
			// A dead upload's row goes with whatever it left: an object, or on S3 the
			// parts of an unfinished multipart upload.
			rep.DeadUploads++
			drop = true
		case r.state == stateDeleting:
			rep.FinishedDeletes++
			drop = true
		case r.state == stateReady && !objects[r.object] && s.lost(ctx, r.object, r.created, started):
			rep.LostObjects++
			s.log.Error("files: a stored file's object is missing; removing its row", "file", r.id)
			drop = true
		}
		if !drop {
			continue
		}
		if err := s.blobs.Delete(ctx, r.object); err != nil {
			return rep, fmt.Errorf("files: reconcile: %w", err)
		}
		if a, ok := s.blobs.(aborter); ok && r.state == stateUploading {
			if err := a.AbortUpload(ctx, r.object); err != nil {
				return rep, fmt.Errorf("files: reconcile: %w", err)
			}
		}
		if _, err := s.db.ExecContext(ctx, `DELETE FROM files WHERE id = $1 AND state = $2`, r.id, r.state); err != nil {
			return rep, fmt.Errorf("files: reconcile: %w", err)
		}
	}
	for name := range objects {
		if known[name] {
			continue
		}
		if err := s.blobs.Delete(ctx, name); err != nil {
			return rep, fmt.Errorf("files: reconcile: %w", err)
		}
		rep.OrphanObjects++
	}
	return rep, nil
}

// aborter is a store where a killed upload can leave unfinished parts (S3 multipart).
type aborter interface {
	AbortUpload(ctx context.Context, name string) error
}

// lost reports whether a ready file's object, missing from the listing, is really gone:
// an upload that began before the listing may have finished after it, so the object is
// asked for once more, and a file begun after the listing started is left alone.
func (s *Service) lost(ctx context.Context, object string, created, listed int64) bool {
	if created >= listed-s.limits.UploadLease.Milliseconds() {
		return false
	}
	_, err := s.blobs.Stat(ctx, object)
	return errors.Is(err, blob.ErrNotFound)
}
