package server

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"steward/internal/access"
	"steward/internal/account"
	"steward/internal/apperr"
	"steward/internal/consent"
	"steward/internal/files"
	"steward/internal/requests"
)

// MemberViewRoles are the roles that open the staff member-view: support (under a
// grant) and the DPO (without one; admin holds every role). Both are recorded.
var MemberViewRoles = []string{access.RoleSupport, access.RoleDPO}

// GrantRoles are the roles of the grants pages: support asks, the DPO decides (when
// the operator lets DPOs approve) and revokes.
var GrantRoles = []string{access.RoleSupport, access.RoleDPO}

// Viewer describes the staff member of a request for the records of what they read.
func (s *Services) Viewer(r *http.Request, sess account.Session) (access.Viewer, error) {
	return s.Access.Viewer(r.Context(), sess.AccountID, s.ClientIP(r))
}

// StaffSession is the session of a staff member known by id only (for RecordReads).
func StaffSession(staffID string) account.Session { return account.Session{AccountID: staffID} }

// RecordReads records that the staff member of the request read the data of each
// subject: what they saw, and why. Call it before the data is written: an error means
// it must not be shown.
func (s *Services) RecordReads(r *http.Request, sess account.Session, what, why string, subjects ...string) error {
	if len(subjects) == 0 {
		return nil
	}
	v, err := s.Viewer(r, sess)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	reads := make([]access.Read, 0, len(subjects))
	for _, id := range subjects {
		if id == "" || seen[id] {
			continue
		}
		seen[id] = true
		reads = append(reads, access.Read{SubjectID: id, What: what, Why: why})
	}
	return s.Access.Record(r.Context(), v, reads...)
}

// RecordRequestReads records a staff read of privacy requests: each request's
// subject, why "privacy request ID".
func (s *Services) RecordRequestReads(r *http.Request, sess account.Session, what string, list ...requests.Request) error {
	if len(list) == 0 {
		return nil
	}
	v, err := s.Viewer(r, sess)
	if err != nil {
		return err
	}
	reads := make([]access.Read, 0, len(list))
	for _, req := range list {
		reads = append(reads, access.Read{SubjectID: req.SubjectID, What: what, Why: "privacy request " + req.ID})
	}
	return s.Access.Record(r.Context(), v, reads...)
}

// MemberData is what the staff member-view shows of a member: the scopes the viewer
// may read, and only those.
type MemberData struct {
	ID       string
	Shown    []string // the scopes shown
	Why      string
	Profile  account.Profile
	Choices  []consent.Choice
	Flags    consent.Flags
	Requests []requests.Request
	Files    []files.File
}

// Has reports whether the scope is shown.
func (m MemberData) Has(scope string) bool { return slices.Contains(m.Shown, scope) }

// StaffMember reads a member for the staff member-view: each scope the viewer may
// read (support: under a live grant; the DPO and admin: all), recorded as one read
// before anything is returned. None: refused.
func (s *Services) StaffMember(r *http.Request, sess account.Session, who string) (MemberData, error) {
	ctx := r.Context()
	v, err := s.Viewer(r, sess)
	if err != nil {
		return MemberData{}, err
	}
	subj, err := s.Accounts.Lookup(ctx, strings.TrimSpace(who))
	if err != nil {
		return MemberData{}, err
	}
	m := MemberData{ID: subj.ID}
	var why access.Why
	var refusal error
	for _, scope := range access.Scopes {
		w, err := s.Access.Allow(ctx, v, subj.ID, scope)
		if apperr.KindOf(err) == apperr.Forbidden {
			refusal = err
			continue
		}
		if err != nil {
			return MemberData{}, err
		}
		if why.Reason == "" {
			why = w
		}
		m.Shown = append(m.Shown, scope)
	}
	if len(m.Shown) == 0 {
		return MemberData{}, refusal
	}
	m.Why = why.Reason
	// The record is written (on the writer) while the data is read (on the readers):
	// the page waits for both, and shows nothing unless the read is recorded.
	recorded := make(chan error, 1)
	go func() {
		recorded <- s.Access.Record(ctx, v, access.Read{SubjectID: subj.ID, What: "member view: " + strings.Join(m.Shown, ", "),
			Why: why.Reason, GrantID: why.GrantID})
	}()
	loadErr := s.loadMember(ctx, &m)
	if err := errors.Join(<-recorded, loadErr); err != nil {
		return MemberData{}, err
	}
	return m, nil
}

func (s *Services) loadMember(ctx context.Context, m *MemberData) error {
	var err error
	if m.Has(access.ScopeProfile) {
		if m.Profile, err = s.Accounts.Profile(ctx, m.ID); err != nil {
			return err
		}
	}
	if m.Has(access.ScopeConsents) {
		if m.Choices, m.Flags, err = s.Consent.Choices(ctx, m.ID); err != nil {
			return err
		}
	}
	if m.Has(access.ScopeRequests) {
		if m.Requests, err = s.Requests.List(ctx, m.ID); err != nil {
			return err
		}
	}
	if m.Has(access.ScopeFiles) {
		if m.Files, err = s.Files.List(ctx, m.ID); err != nil {
			return err
		}
	}
	return nil
}

// ServeStaffFile answers a staff download of a member's file: support under a live
// grant with the files scope, the DPO and admin without one. The read is recorded for
// the member, and the member's file access log records a download not by them.
func (s *Services) ServeStaffFile(w http.ResponseWriter, r *http.Request, sess account.Session, who, fileID string, fail FailFunc) {
	ctx := r.Context()
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		fail(w, r, apperr.New(apperr.Forbidden, "cross_site", "open the file from the member's page"))
		return
	}
	v, err := s.Viewer(r, sess)
	if err != nil {
		fail(w, r, err)
		return
	}
	subj, err := s.Accounts.Lookup(ctx, who)
	if err != nil {
		fail(w, r, err)
		return
	}
	why, err := s.Access.Allow(ctx, v, subj.ID, access.ScopeFiles)
	if err != nil {
		fail(w, r, err)
		return
	}
	f, rs, err := s.Files.OpenForStaff(ctx, v.ID, subj.ID, fileID)
	if err != nil {
		fail(w, r, err)
		return
	}
	defer rs.Close()
	if err := s.Access.Record(ctx, v, access.Read{SubjectID: subj.ID, What: "file download: " + f.Name, Why: why.Reason, GrantID: why.GrantID}); err != nil {
		fail(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", ContentDisposition(f.Name))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	h.Set("Cache-Control", "private, no-store")
	http.ServeContent(w, r, "", f.CreatedAt, rs)
}
