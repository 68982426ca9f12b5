package api

import (
	"net/http"
	"time"

	"steward/internal/account"
	"steward/internal/apperr"
	"steward/internal/server"
)

type registerRequest struct {
	Email           string `json:"email"`
	Password        string `json:"password"`
	Name            string `json:"name"`
	Phone           string `json:"phone"`
	HomeAddress     string `json:"home_address"`
	BusinessAddress string `json:"business_address"`
	Birthdate       string `json:"birthdate"`
	Country         string `json:"country"`
	GuardianEmail   string `json:"guardian_email"`
}

type registerResponse struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

func (a *API) register(w http.ResponseWriter, r *http.Request) {
	var req registerRequest
	if err := server.DecodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	out, err := a.RegisterLimited(r, account.Registration(req))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusCreated, registerResponse{ID: out.ID, Status: string(out.Status)})
}

type tokenRequest struct {
	Token string `json:"token"`
}

func (a *API) verify(w http.ResponseWriter, r *http.Request) {
	var req tokenRequest
	if err := server.DecodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	status, err := a.Accounts.VerifyEmail(r.Context(), req.Token, a.Meta(r))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, map[string]string{"status": string(status)})
}

func (a *API) guardianRequest(w http.ResponseWriter, r *http.Request) {
	g, err := a.Accounts.GuardianRequestFor(r.Context(), r.URL.Query().Get("token"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, map[string]string{"child_name": g.ChildName, "child_email": g.ChildEmail})
}

type guardianDecision struct {
	Token string `json:"token"`
	Agree *bool  `json:"agree"`
}

// guardianDecide records a guardian's answer to a child's registration.
func (a *API) guardianDecide(w http.ResponseWriter, r *http.Request) {
	a.decide(w, r, func(token string, agree bool) error {
		return a.Accounts.GuardianDecide(r.Context(), token, agree, a.Meta(r))
	})
}

// decide reads a guardian's answer (a link's token, and agree true or false), records
// it with record, and answers 204.
func (a *API) decide(w http.ResponseWriter, r *http.Request, record func(token string, agree bool) error) {
	var req guardianDecision
	if err := server.DecodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	if req.Agree == nil {
		a.fail(w, r, apperr.Field("agree", "required", "is required: true to agree, false to decline"))
		return
	}
	if err := record(req.Token, *req.Agree); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// guardianPurpose shows what a guardian's link about a child's choice asks.
func (a *API) guardianPurpose(w http.ResponseWriter, r *http.Request) {
	g, err := a.Accounts.GuardianPurposeFor(r.Context(), r.URL.Query().Get("token"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	p, _ := a.Consent.Register().Purpose(g.Purpose)
	server.WriteJSON(w, http.StatusOK, map[string]string{"child_name": g.ChildName, "child_email": g.ChildEmail,
		"purpose": g.Purpose, "purpose_name": p.Name, "purpose_description": p.Description})
}

// decideGuardianPurpose records a guardian's answer to a child's choice.
func (a *API) decideGuardianPurpose(w http.ResponseWriter, r *http.Request) {
	a.decide(w, r, func(token string, agree bool) error {
		_, err := a.DecideGuardianPurpose(r, token, agree)
		return err
	})
}

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	// A staff account may pass its second factor in the login itself.
	TOTP         string `json:"totp"`
	RecoveryCode string `json:"recovery_code"`
}

type loginResponse struct {
	Token     string    `json:"token"`
	SessionID string    `json:"session_id"`
	ExpiresAt time.Time `json:"expires_at"`
	// SecondFactor is none (no staff role), passed, required (give a code to
	// POST /api/v1/sessions/current/second-factor) or enroll (set one up first).
	SecondFactor string `json:"second_factor"`
}

func (a *API) login(w http.ResponseWriter, r *http.Request) {
	var req loginRequest
	if err := server.DecodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	token, sess, err := a.LoginLimited(w, r, req.Email, req.Password)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if req.TOTP != "" || req.RecoveryCode != "" {
		// A wrong code fails the whole login: the session just made ends.
		if err := a.PassSecondFactorLimited(r, sess, req.TOTP, req.RecoveryCode); err != nil {
			if lerr := a.Accounts.Logout(r.Context(), sess, a.Meta(r)); lerr != nil {
				err = lerr
			}
			a.fail(w, r, err)
			return
		}
		if sess, err = a.Accounts.Authenticate(r.Context(), token); err != nil {
			a.fail(w, r, err)
			return
		}
	}
	state, err := a.SecondFactorState(r.Context(), sess)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusCreated, loginResponse{Token: token, SessionID: sess.ID, ExpiresAt: sess.ExpiresAt, SecondFactor: state})
}

type sessionResponse struct {
	ID         string    `json:"id"`
	CreatedAt  time.Time `json:"created_at"`
	LastSeenAt time.Time `json:"last_seen_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	IP         string    `json:"ip"`
	UserAgent  string    `json:"user_agent"`
	Current    bool      `json:"current"`
}

func (a *API) sessions(w http.ResponseWriter, r *http.Request, sess account.Session) {
	list, err := a.Accounts.Sessions(r.Context(), sess.AccountID, sess.ID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]sessionResponse, len(list))
	for i, s := range list {
		out[i] = sessionResponse(s)
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"sessions": out})
}

func (a *API) logout(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := a.Accounts.Logout(r.Context(), sess, a.Meta(r)); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) revoke(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := a.Accounts.RevokeSession(r.Context(), sess.AccountID, r.PathValue("id"), a.Meta(r)); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) logoutEverywhere(w http.ResponseWriter, r *http.Request, sess account.Session) {
	n, err := a.Accounts.LogoutEverywhere(r.Context(), sess.AccountID, a.Meta(r))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, map[string]int{"ended": n})
}

func (a *API) logoutOthers(w http.ResponseWriter, r *http.Request, sess account.Session) {
	n, err := a.Accounts.LogoutOthers(r.Context(), sess, a.Meta(r))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, map[string]int{"ended": n})
}

type resetRequest struct {
	Email string `json:"email"`
}

func (a *API) requestReset(w http.ResponseWriter, r *http.Request) {
	var req resetRequest
	if err := server.DecodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.ResetLimited(r, req.Email); err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusAccepted, map[string]string{"message": "if an account has this address, a reset link is on its way"})
}

type confirmResetRequest struct {
	Token    string `json:"token"`
	Password string `json:"password"`
}

func (a *API) confirmReset(w http.ResponseWriter, r *http.Request) {
	var req confirmResetRequest
	if err := server.DecodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.Accounts.ResetPassword(r.Context(), req.Token, req.Password, a.Meta(r)); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type changePasswordRequest struct {
	CurrentPassword string `json:"current_password"`
	Password        string `json:"password"`
}

func (a *API) changePassword(w http.ResponseWriter, r *http.Request, sess account.Session) {
	var req changePasswordRequest
	if err := server.DecodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.Limits.PasswordCheck(r.Context(), sess.AccountID); err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.Accounts.ChangePassword(r.Context(), sess, req.CurrentPassword, req.Password, a.Meta(r)); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
