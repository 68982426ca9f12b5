package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"steward/internal/app/apptest"
	"steward/internal/store/storetest"
)

// The dpo works the processors' tasks from the staff pages: an erased member's notice
// to the mail provider (no endpoint in the default register) is a task in the list;
// its page names the address to tell, the reading in the audit log; "mark done" asks
// first, then closes the task, whose address is gone. Another member of staff is refused.
func TestProcessorNoticePages(t *testing.T) {
	t.Parallel()
	for dialect, dbURL := range storetest.Engines(t) {
		t.Run(string(dialect), func(t *testing.T) {
			t.Parallel()
			s := start(t, dbURL)
			d := s.client()
			dpoID := s.signUp(t, d, "dora@example.com", "Dora Dpo", "data protection 2018")
			if err := apptest.GrantStaff(t.Context(), s.app, dpoID, "dpo"); err != nil {
				t.Fatal(err)
			}
			m := s.client()
			mktID := s.signUp(t, m, "mark@example.com", "Mark Eting", "campaign season 2026")
			if err := apptest.GrantStaff(t.Context(), s.app, mktID, "marketing"); err != nil {
				t.Fatal(err)
			}
			gone := s.client()
			s.signUp(t, gone, "gone@example.com", "Gone Member", "difference engine 1822")
			gone.post("/account/delete", url.Values{"password": {"difference engine 1822"}})

			var id string
			for deadline := time.Now().Add(20 * time.Second); id == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				list, err := s.app.Notices().List(t.Context(), "task", 10)
				if err != nil {
					t.Fatal(err)
				}
				if len(list) > 0 {
					id = list[0].ID
				}
			}
			if id == "" {
				t.Fatal("the erasure left no processor task")
			}
			path := "/staff/processor-notices/" + id
			d.get("/staff/processor-notices").want(t, "the tasks", http.StatusOK, `href="`+path+`"`, "Email delivery provider", "Erasure")
			d.get("/staff/processor-notices?state=done").lacks(t, "the done notices", `href="`+path+`"`)
			d.get(path).want(t, "the task", http.StatusOK, "gone@example.com", "Mark done")
			entries, err := s.app.Audit().ForAccount(t.Context(), s.app.DB(), dpoID, 100)
			opened := 0
			for _, e := range entries {
				if e.Event == "processor_notice_opened" {
					opened++
				}
			}
			if err != nil || opened != 1 {
				t.Errorf("audit entries of the reading = %d (%v), want 1", opened, err)
			}
			m.get(path).want(t, "the task to marketing", http.StatusForbidden)
			if p := m.get("/staff/campaigns"); strings.Contains(p.body, "/staff/processor-notices") {
				t.Error("marketing's sidebar links to the processor notices")
			}
			d.get(path+"/done").want(t, "the question", http.StatusOK, "Mark the task done?", "Yes, they are told")
			d.post(path+"/done", nil).wantRedirect(t, "mark done", "/staff/processor-notices?done=1")
			d.get("/staff/processor-notices?done=1").want(t, "after", http.StatusOK, "The task is marked done.")
			p := d.get(path)
			p.want(t, "the closed task", http.StatusOK, "done")
			p.lacks(t, "the closed task", "gone@example.com", "Mark done")
			d.get(path+"/done").want(t, "asking again", http.StatusNotFound)
			d.post(path+"/done", nil).want(t, "closing twice", http.StatusNotFound)
			d.get("/staff/processor-notices?state=done").want(t, "the done notices", http.StatusOK, `href="`+path+`"`)
		})
	}
}
