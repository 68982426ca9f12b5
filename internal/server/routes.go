package server

import "net/http"

// Router is where the API and the pages register their routes: a ServeMux, or Routes,
// which also keeps the list.
type Router interface {
	Handle(pattern string, h http.Handler)
	HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request))
}

// Routes is a ServeMux that keeps every pattern registered on it, in order: the
// authorization test tries each route the site serves, from this list, so that a
// route added without an expected answer for every kind of caller fails it.
type Routes struct {
	*http.ServeMux
	patterns []string
}

// NewRoutes returns an empty Routes.
func NewRoutes() *Routes { return &Routes{ServeMux: http.NewServeMux()} }

// Handle registers h for pattern.
func (m *Routes) Handle(pattern string, h http.Handler) {
	m.ServeMux.Handle(pattern, h)
	m.patterns = append(m.patterns, pattern)
}

// HandleFunc registers h for pattern.
func (m *Routes) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	m.ServeMux.HandleFunc(pattern, h)
	m.patterns = append(m.patterns, pattern)
}

// Patterns returns the registered patterns.
func (m *Routes) Patterns() []string { return append([]string(nil), m.patterns...) }
