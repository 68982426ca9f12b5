package consent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A purpose may stand for one optional cookie category, on consent, once; the built-in
// register has one for each.
func TestCookiePurposes(t *testing.T) {
	reg, err := LoadRegister("")
	if err != nil {
		t.Fatal(err)
	}
	for _, cat := range CookieCategories {
		p, ok := reg.CookiePurpose(cat)
		if !ok || p.Basis != Consent {
			t.Errorf("the built-in register has no purpose on consent for %s cookies: %+v", cat, p)
		}
	}
	const base = "[[purpose]]\nkey = \"account\"\nname = \"A\"\ndescription = \"D\"\nbasis = \"contract\"\n"
	for _, c := range []struct{ extra, want string }{
		{"[[purpose]]\nkey = \"c1\"\nname = \"C\"\ndescription = \"D\"\nbasis = \"consent\"\ncookies = \"tracking\"\n", "want preferences, statistics or marketing"},
		{"[[purpose]]\nkey = \"c1\"\nname = \"C\"\ndescription = \"D\"\nbasis = \"legitimate_interest\"\ncookies = \"statistics\"\n", "needs consent"},
		{"[[purpose]]\nkey = \"c1\"\nname = \"C\"\ndescription = \"D\"\nbasis = \"consent\"\ncookies = \"statistics\"\n" +
			"[[purpose]]\nkey = \"c2\"\nname = \"C\"\ndescription = \"D\"\nbasis = \"consent\"\ncookies = \"statistics\"\n", "already the category of purpose \"c1\""},
	} {
		path := filepath.Join(t.TempDir(), "purposes.toml")
		if err := os.WriteFile(path, []byte(base+c.extra), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadRegister(path); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("register with %q: %v, want an error saying %q", c.extra, err, c.want)
		}
	}
}
