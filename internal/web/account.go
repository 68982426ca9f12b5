package web

import (
	"net/http"
	"slices"
	"time"

	"steward/internal/account"
	"steward/internal/config"
)

// accountView is the profile page: every field the member gave, editable, with the
// choice of what the public profile shows.
type accountView struct {
	ID                string
	Email             string
	EmailVerified     bool
	PendingEmail      string
	GuardianEmail     string
	GuardianConfirmed bool
	CreatedAt         time.Time
	Fields            []field
	Error             string
	Saved             bool
	PasswordChanged   bool
	Minor             bool // below the age of consent: no public profile
	Restricted        bool // processing restricted: the public profile is hidden
	Children          int  // accounts whose registration the member agreed to as guardian
}

// profileFields lays out the profile form from the stored profile, with typed values
// over it after a failed save.
func (p *Pages) profileFields(pr account.Profile, typed map[string]*string) []field {
	val := func(name, stored string) string {
		if v := typed[name]; v != nil {
			return *v
		}
		return stored
	}
	var out []field
	if p.shown("name", pr.Name) {
		out = append(out, p.profileField("name", val("name", pr.Name)))
	}
	email := field{Name: "email", Label: labels["email"], Need: "required", Type: "email", Value: val("email", pr.Email),
		Autocomplete: "email", Hint: "A new address takes effect once you open the link we mail to it."}
	if pr.PendingEmail != "" {
		email.Hint = "Waiting for you to confirm " + pr.PendingEmail + ": open the link we mailed there. Until then we keep using " + pr.Email + "."
	}
	out = append(out, email,
		field{Name: "current_password", Label: labels["current_password"], Need: "needed only to change your email", Type: "password",
			Autocomplete: "current-password", Hint: "Leave it empty otherwise: a session alone must not be enough to take your account."})
	stored := map[string]string{"phone": pr.Phone, "home_address": pr.HomeAddress, "business_address": pr.BusinessAddress}
	for _, f := range config.ProfileFields {
		if f != "name" && p.shown(f, stored[f]) {
			out = append(out, p.profileField(f, val(f, stored[f])))
		}
	}
	out = append(out,
		field{Name: "birthdate", Label: labels["birthdate"], Need: "required", Type: "date", Value: val("birthdate", pr.Birthdate),
			Autocomplete: "bday", Hint: "Never shown on your public profile."},
		p.countryField(val("country", pr.Country)),
	)
	for i := range out {
		if slices.Contains(account.PublicFields, out[i].Name) && !p.o.Accounts.Minor(pr) {
			out[i].PublicBox = true
			out[i].Public = pr.Public[out[i].Name]
			if typed != nil {
				out[i].Public = typed["public_"+out[i].Name] != nil
			}
		}
	}
	return out
}

func (p *Pages) accountView(pr account.Profile, typed map[string]*string) accountView {
	return accountView{
		ID: pr.ID, Email: pr.Email, EmailVerified: pr.EmailVerified, PendingEmail: pr.PendingEmail,
		GuardianEmail: pr.GuardianEmail, GuardianConfirmed: pr.GuardianConfirmed, CreatedAt: pr.CreatedAt,
		Fields: p.profileFields(pr, typed), Minor: p.o.Accounts.Minor(pr),
	}
}

// restricted reports whether the member's processing is restricted.
func (p *Pages) restricted(r *http.Request, subjectID string) (bool, error) {
	f, err := p.o.Consent.Flags(r.Context(), subjectID)
	return f.Restricted, err
}

func (p *Pages) profile(w http.ResponseWriter, r *http.Request, sess account.Session) {
	pr, err := p.o.Accounts.Profile(r.Context(), sess.AccountID)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	v := p.accountView(pr, nil)
	if v.Restricted, err = p.restricted(r, pr.ID); err != nil {
		p.fail(w, r, err)
		return
	}
	children, err := p.o.Accounts.ChildrenOf(r.Context(), pr)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	v.Children = len(children)
	v.Saved = r.URL.Query().Get("saved") == "1"
	v.PasswordChanged = r.URL.Query().Get("saved") == "password"
	p.render(w, r, http.StatusOK, "account", "Your account", true, v)
}

// updateProfile saves the profile form. A field the form did not show stays as it
// is; every shown field's public box is set as ticked or not.
func (p *Pages) updateProfile(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	typed := map[string]*string{}
	patch := account.Patch{Public: map[string]bool{}}
	for name, dst := range map[string]**string{
		"email": &patch.Email, "name": &patch.Name, "phone": &patch.Phone, "home_address": &patch.HomeAddress,
		"business_address": &patch.BusinessAddress, "birthdate": &patch.Birthdate, "country": &patch.Country,
	} {
		if v, ok := posted(r, name); ok {
			*dst, typed[name] = v, v
		}
	}
	for _, f := range account.PublicFields {
		if typed[f] == nil {
			continue
		}
		on, _ := posted(r, "public_"+f)
		patch.Public[f] = on != nil
		typed["public_"+f] = on
	}
	patch.CurrentPassword = r.PostFormValue("current_password")
	var err error
	if patch.CurrentPassword != "" {
		err = p.o.Limits.PasswordCheck(r.Context(), sess.AccountID)
	}
	if err == nil {
		_, err = p.o.Accounts.Update(r.Context(), sess.AccountID, patch, p.o.Meta(r))
	}
	if err != nil {
		pr, perr := p.o.Accounts.Profile(r.Context(), sess.AccountID)
		if perr != nil {
			p.fail(w, r, perr)
			return
		}
		v := p.accountView(pr, typed)
		if v.Restricted, perr = p.restricted(r, pr.ID); perr != nil {
			p.fail(w, r, perr)
			return
		}
		st := p.formError(w, r, v.Fields, &v.Error, err)
		p.render(w, r, st, "account", "Your account", true, v)
		return
	}
	redirect(w, r, "/account?saved=1")
}

// export downloads everything held about the member as a zip archive.
func (p *Pages) export(w http.ResponseWriter, r *http.Request, sess account.Session) {
	subj, err := p.o.Accounts.Subject(r.Context(), sess.AccountID)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	p.o.WriteExport(w, r, subj, p.fail)
}

// EmailGroup is the email field and the current password it alone needs, drawn
// together in the form (a slice of Fields, which formError marks).
func (v accountView) EmailGroup() []field {
	i := slices.IndexFunc(v.Fields, func(f field) bool { return f.Name == "email" })
	if i < 0 || i+1 >= len(v.Fields) || v.Fields[i+1].Name != "current_password" {
		return nil
	}
	return v.Fields[i : i+2]
}
