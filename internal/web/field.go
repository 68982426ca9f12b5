package web

import (
	"net/http"

	"steward/internal/config"
)

// field is one form field as the shared "field" template draws it: label, input,
// hint, the error beside it, and on the profile the "show on my public profile" box.
type field struct {
	Name         string
	Label        string
	Need         string // "required" or "optional", shown after the label; "" shows nothing
	Type         string // an input type, "textarea", "country" or "select"
	Value        string
	Error        string
	Hint         string
	Autocomplete string
	Rows         int // of a textarea; 0 is 3
	Countries    []countryOption
	Prompt       string   // a select's first, empty choice
	Options      []option // a select's choices
	PublicBox    bool     // offer "show on my public profile"
	Public       bool     // ... ticked
	Accept       string   // a file input's types
}

// Required reports whether the browser should insist on a value.
func (f field) Required() bool { return f.Need == "required" }

// countryOption is one entry of a country list.
type countryOption struct {
	Code, Name string
	Selected   bool
}

// option is one choice of a select.
type option struct {
	Value, Name string
	Selected    bool
}

// labels name the fields in forms and in error messages.
var labels = map[string]string{
	"name":             "Name",
	"email":            "Email address",
	"password":         "Password",
	"current_password": "Current password",
	"phone":            "Phone number",
	"home_address":     "Home address",
	"business_address": "Business address",
	"birthdate":        "Date of birth",
	"country":          "Country",
	"guardian_email":   "Parent or guardian’s email address",
	"file":             "File",
	"first_name":       "First name",
	"last_name":        "Last name",
	"company":          "Company",
	"purpose":          "Purpose",
	"subject":          "Subject",
	"body":             "Text",
	"right":            "Request",
	"details":          "Details",
	"state":            "State",
	"note":             "Note",
	"months":           "Months",
	"reason":           "Reason",
	"due_before":       "Due before",
	// The policy's forms name these in their error summaries.
	"version":       "Version",
	"purposes":      "Choices asked again",
	"material":      "Material change",
	"totp":          "Code from your authenticator app",
	"recovery_code": "Recovery code",
	"role":          "Role",
}

// profileField describes an operator-configured field (name, phone, addresses) as
// required or optional.
func (p *Pages) profileField(name, value string) field {
	f := field{Name: name, Label: labels[name], Value: value, Need: string(p.o.Fields[name])}
	if f.Need != string(config.Required) {
		f.Need = string(config.Optional)
	}
	switch name {
	case "name":
		f.Type, f.Autocomplete = "text", "name"
	case "phone":
		f.Type, f.Autocomplete = "tel", "tel"
	case "home_address":
		f.Type, f.Autocomplete = "textarea", "section-home street-address"
	case "business_address":
		f.Type, f.Autocomplete = "textarea", "section-work street-address"
	}
	return f
}

// shown reports whether a form shows an operator-configured field: not when the
// operator turned it off, unless the member still has a value in it to review.
func (p *Pages) shown(name, value string) bool {
	return p.o.Fields[name] != config.Off || value != ""
}

// countryField is the country list with code selected.
func (p *Pages) countryField(code string) field {
	f := field{Name: "country", Label: labels["country"], Need: "required", Type: "country", Value: code,
		Autocomplete: "country", Hint: "Where you live. It sets the age from which you can register on your own."}
	f.Countries = make([]countryOption, 0, len(p.countries)+1)
	found := code == ""
	for _, c := range p.countries {
		f.Countries = append(f.Countries, countryOption{Code: c.Code, Name: c.Name, Selected: c.Code == code})
		found = found || c.Code == code
	}
	if !found {
		// A code the list lacks (an older one the service still accepts, or a typo
		// sent back for correction) stays selectable, so that saving keeps it.
		f.Countries = append([]countryOption{{Code: code, Name: code, Selected: true}}, f.Countries...)
	}
	return f
}

// posted returns a form value and whether the form had the field at all: a field the
// form did not show leaves the stored value alone.
func posted(r *http.Request, name string) (*string, bool) {
	vs, ok := r.PostForm[name]
	if !ok {
		return nil, false
	}
	v := ""
	if len(vs) > 0 {
		v = vs[0]
	}
	return &v, true
}
