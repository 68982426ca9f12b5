package app_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"steward/internal/app/apptest"
	"steward/internal/newsletter"
	"steward/internal/server"
)

// An upload whose row another node reclaimed (its lease seen as run out) stops and
// fails, instead of streaming on into an object nobody holds.
func TestUploadStopsWhenItsLeaseIsLost(t *testing.T) {
	apptest.EachDatabase(t, func(t *testing.T, dbURL string) {
		h := apptest.Start(t, dbURL, "--upload-lease", "1s")
		_, token := h.Member("leased@example.org", pw, nil)
		ctx := context.Background()
		pr, pw := io.Pipe()
		req, _ := http.NewRequest("POST", h.URL+"/api/v1/me/files?name=slow.txt", pr)
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("Authorization", "Bearer "+token)
		status := make(chan int, 1)
		go func() {
			resp, err := h.Client.Do(req)
			if err != nil {
				status <- -1
				return
			}
			resp.Body.Close()
			status <- resp.StatusCode
		}()
		// A slow client: a chunk every few milliseconds, and never the end of the body.
		stopWriting := make(chan struct{})
		defer close(stopWriting)
		go func() {
			chunk := []byte(strings.Repeat("x", 512))
			for {
				select {
				case <-stopWriting:
					pw.CloseWithError(io.ErrUnexpectedEOF)
					return
				case <-time.After(10 * time.Millisecond):
				}
				if _, err := pw.Write(chunk); err != nil {
					return
				}
			}
		}()
		var id string
		deadline := time.Now().Add(10 * time.Second)
		for id == "" {
			_ = h.App.DB().QueryRowContext(ctx, `SELECT id FROM files WHERE state = 'uploading'`).Scan(&id)
			if time.Now().After(deadline) {
				t.Fatal("the upload never started")
			}
			time.Sleep(5 * time.Millisecond) // polling for the row, not ordering events
		}
		// Another node's reconciler takes the row as dead.
		if _, err := h.App.DB().ExecContext(ctx, `DELETE FROM files WHERE id = $1 AND state = 'uploading'`, id); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-status:
			// The server answers 500 and closes the connection while the client is
			// still sending: the client sees the answer, or (when its write fails
			// first) only the closed connection. Either way the upload stopped.
			if got != http.StatusInternalServerError && got != -1 {
				t.Errorf("upload after its row was reclaimed: status %d, want %d or the connection closed", got, http.StatusInternalServerError)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("the upload went on after its row was reclaimed")
		}
		var n int
		if err := h.App.DB().QueryRowContext(ctx, `SELECT count(*) FROM files`).Scan(&n); err != nil || n != 0 {
			t.Errorf("%d file rows left (%v), want none", n, err)
		}
	})
}

// A refused login that cannot be written to the audit log is not answered as a plain
// refusal: it fails, as the attempt went unrecorded.
func TestFailedLoginThatCannotBeAuditedFails(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		h.Member("audited@example.org", pw, nil)
		login := func(email string) int {
			return h.Do("POST", "/api/v1/sessions", map[string]string{"email": email, "password": "wrong-" + pw}, "").Status
		}
		if got := login("audited@example.org"); got != http.StatusUnauthorized {
			t.Fatalf("wrong password: status %d, want %d", got, http.StatusUnauthorized)
		}
		breakTable(t, h, "audit_log")
		for _, email := range []string{"audited@example.org", "nobody@example.org"} {
			if got := login(email); got != http.StatusInternalServerError {
				t.Errorf("%s, wrong password, audit log unwritable: status %d, want %d", email, got, http.StatusInternalServerError)
			}
		}
	})
}

// An unsubscribe mail from an address nobody knows is accepted and forgotten; one the
// database could not look up is refused for now, so that the sender tries again.
func TestUnsubscribeByMailLookupFailureIsRetried(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := context.Background()
		req := newsletter.MailedUnsubscribe{Sender: "stranger@example.org", From: "stranger@example.org", RemoteIP: "192.0.2.1"}
		if err := h.App.Newsletter().UnsubscribeByMail(ctx, req); err != nil {
			t.Fatalf("unknown address: %v, want no error", err)
		}
		breakTable(t, h, "subscribers")
		if err := h.App.Newsletter().UnsubscribeByMail(ctx, req); err == nil {
			t.Error("a failed subscriber lookup was taken for an unknown address")
		}
	})
}

// breakTable renames table for the rest of the test, so that every statement on it
// fails, and names it back at the end.
func breakTable(t *testing.T, h *apptest.Harness, table string) {
	t.Helper()
	ctx := context.Background()
	if _, err := h.App.DB().ExecContext(ctx, `ALTER TABLE `+table+` RENAME TO `+table+`_broken`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := h.App.DB().ExecContext(ctx, `ALTER TABLE `+table+`_broken RENAME TO `+table); err != nil {
			t.Error(err)
		}
	})
}

// A logout whose session cannot be looked up fails: it must not clear the cookie and
// say "logged out" while the session lives on.
func TestLogoutThatCannotReadTheSessionFails(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		_, token := h.Member("leaving.soon@example.org", pw, nil)
		breakTable(t, h, "sessions")
		req, _ := http.NewRequest("POST", h.URL+"/logout", strings.NewReader(""))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(&http.Cookie{Name: server.CookieName, Value: token})
		hc := &http.Client{Timeout: 10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusInternalServerError {
			t.Errorf("logout with the sessions unreadable: status %d, want %d", resp.StatusCode, http.StatusInternalServerError)
		}
		for _, c := range resp.Cookies() {
			if c.Name == server.CookieName {
				t.Errorf("the failed logout set the cookie %q", c.Value)
			}
		}
	})
}
