package api

import (
	"cmp"
	"net/http"
	"strconv"
	"time"

	"steward/internal/account"
	"steward/internal/apperr"
	"steward/internal/server"
)

// errStaffFactor refuses a second factor to an account without a staff role.
var errStaffFactor error = apperr.New(apperr.Forbidden, "staff_only", "a second factor is for accounts holding a staff role")

// registerStaff adds the second factor, re-authentication, staff management and
// audit log routes.
func (a *API) registerStaff(mux server.Router) {
	mux.HandleFunc("GET /api/v1/me/second-factor", a.auth(a.secondFactor))
	mux.HandleFunc("POST /api/v1/me/second-factor", a.auth(a.enroll))
	mux.HandleFunc("POST /api/v1/me/second-factor/confirm", a.auth(a.confirmEnrollment))
	mux.HandleFunc("POST /api/v1/me/second-factor/recovery-codes", a.auth(a.sensitive(a.regenerateCodes)))
	mux.HandleFunc("POST /api/v1/sessions/current/second-factor", a.auth(a.passSecondFactor))
	mux.HandleFunc("POST /api/v1/sessions/current/reauth", a.auth(a.reauth))
	mux.HandleFunc("GET /api/v1/staff/people", a.staff(a.people, "admin"))
	mux.HandleFunc("POST /api/v1/staff/people", a.staff(a.sensitive(a.grantRole), "admin"))
	mux.HandleFunc("DELETE /api/v1/staff/people/{id}/roles/{role}", a.staff(a.sensitive(a.revokeRole), "admin"))
	mux.HandleFunc("DELETE /api/v1/staff/people/{id}/second-factor", a.staff(a.sensitive(a.resetSecondFactor), "admin"))
	mux.HandleFunc("GET /api/v1/staff/audit", a.staff(a.auditLog, "auditor"))
	mux.HandleFunc("POST /api/v1/staff/audit/verify", a.staff(a.verifyAudit, "auditor"))
}

// sensitive admits a request to a sensitive action only when the session's holder
// gave the password or a code within the re-authentication window (--reauth-window);
// else 403 reauth_required, and the client re-authenticates through
// POST /api/v1/sessions/current/reauth and sends the request again. Wrap the handler
// inside the staff gate: a.staff(a.sensitive(h), roles...).
func (a *API) sensitive(h func(http.ResponseWriter, *http.Request, account.Session)) func(http.ResponseWriter, *http.Request, account.Session) {
	return func(w http.ResponseWriter, r *http.Request, sess account.Session) {
		if !a.Accounts.Recent(sess) {
			a.fail(w, r, server.ErrReauthRequired)
			return
		}
		h(w, r, sess)
	}
}

type secondFactorResponse struct {
	State        string     `json:"state"` // none, passed, required, enroll
	Enrolled     bool       `json:"enrolled"`
	EnrolledAt   *time.Time `json:"enrolled_at,omitempty"`
	RecoveryLeft int        `json:"recovery_codes_left"`
}

func (a *API) secondFactor(w http.ResponseWriter, r *http.Request, sess account.Session) {
	st, err := a.Accounts.SecondFactor(r.Context(), sess.AccountID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	state, err := a.SecondFactorState(r.Context(), sess)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := secondFactorResponse{State: state, Enrolled: st.Enrolled, RecoveryLeft: st.RecoveryLeft}
	if st.Enrolled {
		out.EnrolledAt = &st.EnrolledAt
	}
	server.WriteJSON(w, http.StatusOK, out)
}

type enrollmentResponse struct {
	Secret     string `json:"secret"`
	OtpauthURI string `json:"otpauth_uri"`
	QRPNG      string `json:"qr_png"` // a data: URI
}

// enroll begins an enrollment with a new secret (replacing one in progress).
func (a *API) enroll(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if staff, err := a.Staff.IsStaff(r.Context(), sess.AccountID); err != nil || !staff {
		a.fail(w, r, cmp.Or(err, errStaffFactor))
		return
	}
	e, err := a.Accounts.Enroll(r.Context(), sess.AccountID, true)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusCreated, enrollmentResponse{Secret: e.Secret, OtpauthURI: e.URI, QRPNG: e.QR})
}

type codeRequest struct {
	TOTP         string `json:"totp"`
	RecoveryCode string `json:"recovery_code"`
	Password     string `json:"password"`
}

type recoveryCodesResponse struct {
	RecoveryCodes []string `json:"recovery_codes"`
}

// confirmEnrollment confirms the enrollment with a code; the session passes the
// second factor, and the recovery codes are answered, once.
func (a *API) confirmEnrollment(w http.ResponseWriter, r *http.Request, sess account.Session) {
	var req codeRequest
	if err := server.DecodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	codes, err := a.ConfirmEnrollmentLimited(r, sess, req.TOTP)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, recoveryCodesResponse{RecoveryCodes: codes})
}

func (a *API) regenerateCodes(w http.ResponseWriter, r *http.Request, sess account.Session) {
	codes, err := a.Accounts.RegenerateRecoveryCodes(r.Context(), sess.AccountID, a.Meta(r))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, recoveryCodesResponse{RecoveryCodes: codes})
}

// passSecondFactor passes the session's second factor with a code or a recovery code.
func (a *API) passSecondFactor(w http.ResponseWriter, r *http.Request, sess account.Session) {
	var req codeRequest
	if err := server.DecodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.PassSecondFactorLimited(r, sess, req.TOTP, req.RecoveryCode); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// reauth records that the holder gave the password or a code again.
func (a *API) reauth(w http.ResponseWriter, r *http.Request, sess account.Session) {
	var req codeRequest
	if err := server.DecodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.ReauthLimited(r, sess, req.Password, req.TOTP); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type personResponse struct {
	ID                  string    `json:"id"`
	Email               string    `json:"email"`
	Roles               []string  `json:"roles"`
	Since               time.Time `json:"since"`
	SecondFactorEnabled bool      `json:"second_factor_enrolled"`
}

func (a *API) people(w http.ResponseWriter, r *http.Request, _ account.Session) {
	list, err := a.StaffPeople(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]personResponse, 0, len(list))
	for _, p := range list {
		out = append(out, personResponse{ID: p.AccountID, Email: p.Email, Roles: p.Roles, Since: p.Since, SecondFactorEnabled: p.Enrolled})
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"people": out})
}

type roleGrantRequest struct {
	Email string `json:"email"`
	Role  string `json:"role"`
}

func (a *API) grantRole(w http.ResponseWriter, r *http.Request, sess account.Session) {
	var req roleGrantRequest
	if err := server.DecodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	id, err := a.GrantRole(r, sess, req.Email, req.Role)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, map[string]string{"id": id, "role": req.Role})
}

func (a *API) revokeRole(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := a.RevokeRole(r, sess, r.PathValue("id"), r.PathValue("role")); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) resetSecondFactor(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := a.ResetStaffSecondFactor(r, sess, r.PathValue("id")); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type auditEntryResponse struct {
	ID      int64     `json:"id"`
	Seq     int64     `json:"seq,omitempty"`
	At      time.Time `json:"at"`
	Event   string    `json:"event"`
	Account string    `json:"account,omitempty"`
	Detail  string    `json:"detail,omitempty"`
	Hash    string    `json:"hash,omitempty"`
}

type auditResponse struct {
	Entries      []auditEntryResponse `json:"entries"`
	Total        int                  `json:"total"`
	Page         int                  `json:"page"`
	Size         int                  `json:"size"`
	Verification server.Verification  `json:"verification"`
}

// verifyAudit asks for a verification of the whole chain now: 202; its result is the
// verification of GET /api/v1/staff/audit once the job has run.
func (a *API) verifyAudit(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := a.VerifyAudit(r.Context(), sess.AccountID, a.ClientIP(r)); err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusAccepted, map[string]bool{"queued": true})
}

// auditLog lists a page of the audit log (?page=1&size=50, newest first) with the
// chain's verification.
func (a *API) auditLog(w http.ResponseWriter, r *http.Request, _ account.Session) {
	page, _ := strconv.Atoi(r.URL.Query().Get("page"))
	size, _ := strconv.Atoi(r.URL.Query().Get("size"))
	if page < 1 {
		page = 1
	}
	if size < 1 || size > 500 {
		size = 50
	}
	list, total, ver, err := a.AuditPage(r.Context(), (page-1)*size, size)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := auditResponse{Entries: make([]auditEntryResponse, 0, len(list)), Total: total, Page: page, Size: size, Verification: ver}
	for _, e := range list {
		out.Entries = append(out.Entries, auditEntryResponse{ID: e.ID, Seq: e.Seq, At: e.At, Event: e.Event, Account: e.Account, Detail: e.Detail, Hash: e.Hash})
	}
	server.WriteJSON(w, http.StatusOK, out)
}
