package newsletter_test

import (
	"context"
	"strings"
	"testing"

	"steward/internal/account"
	"steward/internal/app/apptest"
	"steward/internal/apperr"
	"steward/internal/newsletter"
	"steward/internal/text"
)

// The reading stage of an import takes any file without panicking, and every row it
// passes on to be stored has a valid address (as the sign-up form checks it), one
// line of text in each name, and an address no other row of the file has; every other
// row is counted invalid. A file it refuses is refused as invalid input.
func FuzzImportCSV(f *testing.F) {
	for _, s := range []string{
		"email,first_name,last_name,consented_at,source,evidence\nKim@Example.org,Kim,K,2024-03-01T10:00:00Z,\"webinar, spring\",\"ticked \"\"yes\"\" on form 3\"\nlee@example.org,Lee,L,,,\n",
		"EMAIL, First_Name ,LAST_NAME,company\r\na@example.org,A,B,Acme\r\nA@EXAMPLE.ORG,A,B,Acme\r\n",
		"email,first_name,last_name\n\"eve@example.org\",\"Eve\r\nBcc: victim@example.com\r\n\r\nInjected body\",E\n",
		"email,first_name,last_name,company\nx@example.org,X\x00,Y,\"Co\u2028\"\n",
		"\ufeffemail,first_name,last_name\nbom@example.org,B,O\n",
		"email,email,first_name,last_name\none@example.org,two@example.org,O,T\n",
		"email,first_name,last_name\nnot-an-address,N,A\n\"un\"closed,x,y\n",
		"email,first_name,last_name\n" + strings.Repeat("a", 70000) + "@example.org,L,L\n",
		"email,first_name,last_name\nfew@example.org\n",
		"email,first_name\n",
		"",
		"email,first_name,last_name\n\"Victim <victim@example.com>\",V,V\nv@example.org\r\nbcc@example.org,V,V\n",
	} {
		f.Add(s)
	}
	h := apptest.Start(f, "")
	ns := h.App.Newsletter()
	f.Fuzz(func(t *testing.T, file string) {
		rows, rep, err := ns.ReadImport(context.Background(), strings.NewReader(file), newsletter.Purpose)
		if err != nil {
			if e, ok := apperr.As(err); !ok || e.Kind != apperr.Invalid || e.Field != "file" {
				t.Fatalf("ReadImport(%q): %v, want an invalid-file error", file, err)
			}
			return
		}
		if rep.Rows != len(rows)+rep.Invalid {
			t.Fatalf("%d rows read, %d passed on, %d invalid", rep.Rows, len(rows), rep.Invalid)
		}
		seen := map[string]bool{}
		for _, sub := range rows {
			if got, err := account.ValidEmail("email", sub.Email); err != nil || got != sub.Email {
				t.Fatalf("row passed on with address %q: %q, %v", sub.Email, got, err)
			}
			if seen[sub.Email] {
				t.Fatalf("address %q passed on twice", sub.Email)
			}
			seen[sub.Email] = true
			for _, v := range []string{sub.FirstName, sub.LastName, sub.Company} {
				if err := text.Line("name", v, 1000); err != nil {
					t.Fatalf("row passed on with a name %q: %v", v, err)
				}
			}
			// Names are optional (issue 12, finding 9); given, they are trimmed.
			for _, v := range []string{sub.FirstName, sub.LastName} {
				if v != strings.TrimSpace(v) {
					t.Fatalf("row passed on with an untrimmed name %q", v)
				}
			}
		}
	})
}
