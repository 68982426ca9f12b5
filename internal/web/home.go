package web

import "net/http"

// homeView is the front page.
type homeView struct {
	Site     string
	LoggedIn bool
}

func (p *Pages) home(w http.ResponseWriter, r *http.Request) {
	in := p.loggedIn(r)
	p.render(w, r, http.StatusOK, "home", "", in, homeView{Site: p.o.SiteName, LoggedIn: in})
}
