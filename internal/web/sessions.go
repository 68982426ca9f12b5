package web

import (
	"net/http"
	"strings"
	"time"

	"steward/internal/account"
	"steward/internal/server"
	"steward/internal/text"
)

// sessionsView lists the member's sessions.
type sessionsView struct {
	Sessions    []sessionRow
	Ended       bool
	OthersEnded bool
}

// sessionRow is one session as the list shows it.
type sessionRow struct {
	ID         string
	CreatedAt  time.Time
	LastSeenAt time.Time
	IP         string
	Browser    string
	UserAgent  string
	Current    bool
}

func (p *Pages) sessions(w http.ResponseWriter, r *http.Request, sess account.Session) {
	list, err := p.o.Accounts.Sessions(r.Context(), sess.AccountID, sess.ID)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	v := sessionsView{Ended: r.URL.Query().Get("ended") == "1", OthersEnded: r.URL.Query().Get("others") == "1"}
	for _, s := range list {
		v.Sessions = append(v.Sessions, sessionRow{ID: s.ID, CreatedAt: s.CreatedAt, LastSeenAt: s.LastSeenAt, IP: s.IP,
			Browser: browser(s.UserAgent), UserAgent: s.UserAgent, Current: s.Current})
	}
	p.render(w, r, http.StatusOK, "sessions", "Your sessions", true, v)
}

// revoke ends one session; ending this browser's own session logs it out.
func (p *Pages) revoke(w http.ResponseWriter, r *http.Request, sess account.Session) {
	id := r.PathValue("id")
	if err := p.o.Accounts.RevokeSession(r.Context(), sess.AccountID, id, p.o.Meta(r)); err != nil {
		p.fail(w, r, err)
		return
	}
	if id == sess.ID {
		server.ClearSessionCookie(w, p.o.CookieSecure)
		redirect(w, r, "/login?notice=revoked")
		return
	}
	redirect(w, r, "/account/sessions?ended=1")
}

// revokeAll ends every session of the account, this one included.
func (p *Pages) revokeAll(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if _, err := p.o.Accounts.LogoutEverywhere(r.Context(), sess.AccountID, p.o.Meta(r)); err != nil {
		p.fail(w, r, err)
		return
	}
	server.ClearSessionCookie(w, p.o.CookieSecure)
	redirect(w, r, "/login?notice=everywhere")
}

// revokeOthers ends every session of the account but this one.
func (p *Pages) revokeOthers(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if _, err := p.o.Accounts.LogoutOthers(r.Context(), sess, p.o.Meta(r)); err != nil {
		p.fail(w, r, err)
		return
	}
	redirect(w, r, "/account/sessions?others=1")
}

// browser names the browser and system of a User-Agent header in a few words; the
// list shows the whole header on hover.
func browser(ua string) string {
	name, system := firstIn(ua, browserNames), firstIn(ua, systemNames)
	if strings.HasPrefix(ua, "curl/") {
		name = "curl"
	}
	switch {
	case name != "" && system != "":
		return name + " on " + system
	case name != "":
		return name
	case system != "":
		return "A browser on " + system
	case ua == "":
		return "Unknown browser"
	}
	if len(ua) > 40 {
		return text.Cut(ua, 40) + "…"
	}
	return ua
}

// browserNames and systemNames name what a User-Agent header says, by a token it
// holds: the first that matches, so the order matters (Edge and Opera also say
// Chrome, Chrome also says Safari, Android also says Linux).
var (
	browserNames = [][2]string{{"Edg/", "Edge"}, {"OPR/", "Opera"}, {"Firefox/", "Firefox"}, {"Chromium/", "Chromium"},
		{"Chrome/", "Chrome"}, {"Safari/", "Safari"}}
	systemNames = [][2]string{{"Android", "Android"}, {"iPhone", "iOS"}, {"iPad", "iOS"}, {"Windows", "Windows"},
		{"Mac OS X", "macOS"}, {"CrOS", "ChromeOS"}, {"Linux", "Linux"}}
)

// firstIn returns the name of the first token of names that ua holds, or "".
func firstIn(ua string, names [][2]string) string {
	for _, n := range names {
		if strings.Contains(ua, n[0]) {
			return n[1]
		}
	}
	return ""
}

// passwordView is the form that changes the password.
type passwordView struct {
	Fields []field
	Error  string
}

func passwordFields() []field {
	return []field{
		{Name: "current_password", Label: labels["current_password"], Type: "password", Need: "required", Autocomplete: "current-password"},
		{Name: "password", Label: "New password", Type: "password", Need: "required", Autocomplete: "new-password",
			Hint: "At least 10 characters; not a common password, and not your name or email address. " +
				"Changing it logs you out on every other device."},
	}
}

func (p *Pages) passwordForm(w http.ResponseWriter, r *http.Request, sess account.Session) {
	p.render(w, r, http.StatusOK, "password", "Change your password", true, passwordView{Fields: passwordFields()})
}

func (p *Pages) changePassword(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	err := p.o.Limits.PasswordCheck(r.Context(), sess.AccountID)
	if err == nil {
		err = p.o.Accounts.ChangePassword(r.Context(), sess, r.PostFormValue("current_password"),
			r.PostFormValue("password"), p.o.Meta(r))
	}
	if err != nil {
		v := passwordView{Fields: passwordFields()}
		st := p.formError(w, r, v.Fields, &v.Error, err)
		p.render(w, r, st, "password", "Change your password", true, v)
		return
	}
	// Every other session of the account has ended; this one goes on.
	redirect(w, r, "/account?saved=password")
}

// activityView is the account's security log.
type activityView struct {
	Events []activityRow
}

// activityRow is one security event.
type activityRow struct {
	At     time.Time
	Event  string
	IP     string
	Detail string
}

// eventNames say the audit log's events in words.
var eventNames = map[string]string{
	"registered":               "Account registered",
	"email_verified":           "Email address confirmed",
	"email_changed":            "Email address changed",
	"guardian_agreed":          "Parent or guardian agreed",
	"login":                    "Logged in",
	"login_failed":             "Failed login attempt",
	"session_revoked":          "Session ended",
	"logout_everywhere":        "Logged out everywhere",
	"logout_others":            "Logged out of every other session",
	"password_reset_requested": "Password reset link requested",
	"password_reset":           "Password reset with a mailed link",
	"password_changed":         "Password changed",
	"profile_updated":          "Profile changed",
	"confirmation_resent":      "Confirmation mail sent again",
}

// eventDetail says an event's detail in words: a registration's state, the fields a
// profile change touched (by name: the log never holds their values).
func eventDetail(event, detail string) string {
	switch event {
	case "registered":
		switch account.Status(detail) {
		case account.PendingVerification:
			return "waiting for the email address to be confirmed"
		case account.PendingGuardian:
			return "waiting for the address to be confirmed and a parent or guardian to agree"
		case account.Active:
			return "active"
		}
	case "profile_updated":
		if detail == "" {
			return ""
		}
		var words []string
		for _, f := range strings.Split(detail, ",") {
			switch f {
			case "public":
				words = append(words, "what your public profile shows")
			case "email":
				words = append(words, "email address (waiting for the new one to be confirmed)")
			default:
				if l := labels[f]; l != "" {
					words = append(words, l)
				}
			}
		}
		if len(words) == 0 {
			return ""
		}
		return "changed: " + strings.Join(words, ", ")
	}
	if strings.Contains(detail, "_") {
		return strings.ReplaceAll(detail, "_", " ") // a code, readable at least
	}
	return detail
}

// activityLimit is how many events the page shows.
const activityLimit = 100

func (p *Pages) activity(w http.ResponseWriter, r *http.Request, sess account.Session) {
	list, err := p.o.Accounts.Activity(r.Context(), sess.AccountID, activityLimit)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	var v activityView
	for _, e := range list {
		name := eventNames[e.Event]
		if name == "" {
			name = strings.ReplaceAll(e.Event, "_", " ")
		}
		v.Events = append(v.Events, activityRow{At: e.At, Event: name, IP: e.IP, Detail: eventDetail(e.Event, e.Detail)})
	}
	p.render(w, r, http.StatusOK, "activity", "Security activity", true, v)
}
