package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// docs/datamap.md is what "steward datamap" prints; this test fails when a holder's
// declaration changes without the document. STEWARD_UPDATE_DOCS=1 rewrites it.
func TestDatamapDocIsCurrent(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	env := func(k string) string {
		if k == "STEWARD_DATA" {
			return dir
		}
		return ""
	}
	if code := Run(context.Background(), []string{"datamap", "--log-level", "error"}, env, &out, &errb); code != 0 {
		t.Fatalf("datamap: exit %d: %s", code, errb.String())
	}
	doc := filepath.Join("..", "..", "docs", "datamap.md")
	if os.Getenv("STEWARD_UPDATE_DOCS") == "1" {
		if err := os.WriteFile(doc, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("docs/datamap.md is out of date; run STEWARD_UPDATE_DOCS=1 go test ./internal/cli")
	}
	if !bytes.Contains(want, []byte("| accounts | email | user.contact.email |")) {
		t.Errorf("the data map lacks the account's email")
	}
}
