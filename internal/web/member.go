package web

import (
	"net/http"
)

// memberView is a public profile: only what the member chose to show.
type memberView struct {
	Heading string
	Named   bool // the heading is the member's name
	Fields  []publicField
}

// publicField is one shown field.
type publicField struct {
	Label string
	Value string
}

func (p *Pages) publicProfile(w http.ResponseWriter, r *http.Request) {
	pub, err := p.o.PublicProfile(r.Context(), r.PathValue("id"))
	if err != nil {
		p.fail(w, r, err)
		return
	}
	v := memberView{Heading: "A member"}
	for _, f := range pub.Fields {
		if f.Name == "name" {
			v.Heading, v.Named = f.Value, true
			continue
		}
		value := f.Value
		if f.Name == "country" {
			value = p.countryName(value)
		}
		v.Fields = append(v.Fields, publicField{Label: labels[f.Name], Value: value})
	}
	p.render(w, r, http.StatusOK, "member", v.Heading, p.loggedIn(r), v)
}

// countryName is the name of a country code, or the code if the list lacks it.
func (p *Pages) countryName(code string) string {
	for _, c := range p.countries {
		if c.Code == code {
			return c.Name
		}
	}
	return code
}
