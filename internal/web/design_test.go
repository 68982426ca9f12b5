package web_test

import (
	"net/http"
	"testing"
)

// TestStyleguide: /_styleguide exists only in development mode, and shows the components.
func TestStyleguide(t *testing.T) {
	t.Parallel()
	start(t, "").client().get("/_styleguide").want(t, "styleguide without --dev", http.StatusNotFound, "Page not found")
	start(t, "", "--dev").client().get("/_styleguide").want(t, "styleguide with --dev", http.StatusOK,
		`class="toggle"`, `class="cards"`, `<table>`, `class="badge ok"`, `class="alert"`, `<details class="dialog">`,
		`class="pagination"`, `aria-invalid="true"`)
}
