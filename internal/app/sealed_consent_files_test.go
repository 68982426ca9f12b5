package app_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"steward/internal/app/apptest"
	"steward/internal/consent"
	"steward/internal/datamap/residuetest"
)

// send makes a request from the address ip (the harness trusts X-Forwarded-For) with
// the browser ua.
func send(h *apptest.Harness, method, path string, body []byte, token, ip, ua, ctype string) apptest.Response {
	h.T.Helper()
	req, _ := http.NewRequest(method, h.URL+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-Forwarded-For", ip)
	req.Header.Set("User-Agent", ua)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := h.Client.Do(req)
	if err != nil {
		h.T.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return apptest.Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// jsonOK fails the test unless r is a 200 answer, and returns its JSON.
func jsonOK(t *testing.T, r apptest.Response) map[string]any {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	return r.JSON()
}

// A member's consent evidence (address and browser) and a file's name, type and
// checksum, and the addresses of the file's access log, are stored only sealed: they
// are never on disk in plain text, the member's export and pages show them opened, a
// receipt still verifies, and after the member's erasure none of them is in the
// engine's raw files (table and index files, dead rows, WAL). Another member's
// refused attempt keeps their address sealed under their own key: the owner never
// reads it, the other member's export shows it.
func TestConsentAndFilesSealedOnDisk(t *testing.T) {
	apptest.EachDatabase(t, func(t *testing.T, dbURL string) {
		h := apptest.Start(t, dbURL, "--trust-proxy", "true")
		ctx := context.Background()
		id, token := h.Member(randomValue("sealed.consent.")+"@example.org", pw, nil)
		otherID, other := h.Member(randomValue("sealed.other.")+"@example.org", pw, nil)
		ip, ua := randomIP(), randomValue("TestBrowser/")
		fileIP, otherIP := randomIP(), randomIP()
		name, ctype := randomValue("tax-return-")+".pdf", "application/x-"+randomValue("type")
		content := []byte(randomValue("content "))

		// Decisions, a flag and a browser signal, all from ip with ua.
		for _, body := range []string{`{"choices":{"newsletter":true,"partner_sharing":true}}`, `{"restricted":true}`} {
			if r := send(h, "PUT", "/api/v1/me/consents", []byte(body), token, ip, ua, "application/json"); r.Status != 200 {
				t.Fatalf("PUT consents %s = %d %s", body, r.Status, r.Body)
			}
		}
		hist := jsonOK(t, h.Do("GET", "/api/v1/me/consents/history", nil, token))["events"].([]any)
		if len(hist) != 3 {
			t.Fatalf("history has %d events, want 3", len(hist))
		}
		for _, e := range hist {
			ev := e.(map[string]any)["evidence"].(map[string]any)
			if ev["ip"] != ip || ev["user_agent"] != ua {
				t.Errorf("history shows evidence %v, want ip %s and user agent %s", ev, ip, ua)
			}
		}
		// A receipt is built from the event and verifies.
		rc := get(h, token, hist[len(hist)-1].(map[string]any)["receipt_url"].(string), nil)
		got, err := consent.Verify(rc.Body, h.App.Consent().Signer().PublicKey())
		if err != nil || got.Subject != id || got.Decision != "granted" {
			t.Errorf("receipt: %+v, %v (%d %s)", got, err, rc.Status, rc.Body)
		}

		// A file uploaded, downloaded, and attempted by another member.
		up := send(h, "POST", "/api/v1/me/files?name="+url.QueryEscape(name), content, token, fileIP, ua, ctype)
		if up.Status != 201 || up.JSON()["name"] != name || up.JSON()["content_type"] != ctype {
			t.Fatalf("upload = %d %s", up.Status, up.Body)
		}
		fileID, sha := up.JSON()["id"].(string), up.JSON()["sha256"].(string)
		if d := send(h, "GET", "/api/v1/me/files/"+fileID, nil, token, fileIP, ua, ""); d.Status != 200 || !bytes.Equal(d.Body, content) ||
			d.Header.Get("X-Content-SHA256") != sha {
			t.Fatalf("download = %d", d.Status)
		}
		if d := send(h, "GET", "/api/v1/me/files/"+fileID, nil, other, otherIP, ua, ""); d.Status != 404 {
			t.Fatalf("another member's download = %d", d.Status)
		}
		list := jsonOK(t, get(h, token, "/api/v1/me/files", nil))["files"].([]any)
		if f := list[0].(map[string]any); len(list) != 1 || f["name"] != name || f["content_type"] != ctype || f["sha256"] != sha {
			t.Errorf("list = %v", list)
		}
		access := jsonOK(t, get(h, token, "/api/v1/me/file-access", nil))["access"].([]any)
		var seen []string
		for _, a := range access {
			m := a.(map[string]any)
			if m["name"] != name {
				t.Errorf("access log names the file %v, want %s", m["name"], name)
			}
			ip, _ := m["ip"].(string)
			seen = append(seen, m["action"].(string)+" "+ip)
		}
		if got, want := strings.Join(seen, ","), "denied ,download "+fileIP+",upload "+fileIP; got != want {
			t.Errorf("access log = %s, want %s", got, want)
		}

		// Live, none of it is on disk in plain text.
		terms := []string{ip, ua, fileIP, otherIP, name, ctype, sha}
		if found := residuetest.RawFindings(t, h.App.DB(), terms...); len(found) > 0 {
			t.Fatalf("a live member's sealed values are on disk in plain text: %v", found)
		}

		// The exports show them opened: the member's all of theirs, the other member
		// their own refused attempt, with their address and not the owner.
		exp := get(h, token, "/api/v1/me/export", nil)
		if exp.Status != http.StatusOK {
			t.Fatalf("export = %d %s", exp.Status, exp.Body)
		}
		files := unzip(t, exp.Body)
		for path, want := range map[string][]string{
			"consent/consent_events.csv":         {ip, ua},
			"files/files.csv":                    {name, ctype, sha},
			"files/file_access_log.csv":          {fileIP, "another member"},
			"files/files/" + fileID + "-" + name: {string(content)},
		} {
			for _, w := range want {
				if !strings.Contains(files[path], w) {
					t.Errorf("export %s lacks %q:\n%s", path, w, files[path])
				}
			}
		}
		if strings.Contains(files["files/file_access_log.csv"], otherIP) || strings.Contains(files["files/file_access_log.csv"], otherID) {
			t.Errorf("the owner's export shows the other member:\n%s", files["files/file_access_log.csv"])
		}
		theirs := unzip(t, get(h, other, "/api/v1/me/export", nil).Body)["files/file_access_log.csv"]
		if !strings.Contains(theirs, otherIP) || !strings.Contains(theirs, "denied") || strings.Contains(theirs, id) || strings.Contains(theirs, fileIP) {
			t.Errorf("the other member's export of their attempt:\n%s", theirs)
		}
		if strings.Contains(theirs, name) {
			t.Errorf("the other member's export names the owner's file:\n%s", theirs)
		}

		// Deleted, the file is still named in its log (sealed: never on disk in plain
		// text), and in the export, until the erasure.
		if d := send(h, "DELETE", "/api/v1/me/files/"+fileID, nil, token, fileIP, ua, ""); d.Status != http.StatusNoContent {
			t.Fatalf("delete = %d %s", d.Status, d.Body)
		}
		for _, a := range jsonOK(t, get(h, token, "/api/v1/me/file-access", nil))["access"].([]any) {
			if m := a.(map[string]any); m["name"] != name {
				t.Errorf("after the delete, the access log's %v entry names the file %q, want %s", m["action"], m["name"], name)
			}
		}
		if found := residuetest.RawFindings(t, h.App.DB(), name); len(found) > 0 {
			t.Errorf("a deleted file's name is on disk in plain text: %v", found)
		}
		log := unzip(t, get(h, token, "/api/v1/me/export", nil).Body)["files/file_access_log.csv"]
		if n := strings.Count(log, name); n != 4 {
			t.Errorf("the export's access log names the file %d times, want 4 (upload, download, refused, delete):\n%s", n, log)
		}

		// After the erasure, nothing of it is on disk.
		del := h.Do("DELETE", "/api/v1/me", map[string]string{"password": pw}, token)
		if del.Status != http.StatusAccepted {
			t.Fatalf("delete = %d %s", del.Status, del.Body)
		}
		h.WaitErasure(del.JSON()["request_id"].(string))
		if found := residuetest.RawFindings(t, h.App.DB(), terms...); len(found) > 0 {
			t.Fatalf("after erasure: %v", found)
		}
		var left int
		if err := h.App.DB().QueryRowContext(ctx, `SELECT (SELECT count(*) FROM consent_events WHERE subject_id = $1)
			+ (SELECT count(*) FROM files WHERE owner_id = $1) + (SELECT count(*) FROM file_access_log WHERE owner_id = $1 OR actor_id = $1)`,
			id).Scan(&left); err != nil || left != 0 {
			t.Errorf("%d rows of the erased member left (%v)", left, err)
		}
	})
}
