package app_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"steward/internal/app/apptest"
	"steward/internal/blob"
	"steward/internal/store/storetest"
)

// s3Flags returns the flags for the test S3 server with a fresh prefix, or nil when
// none is configured.
func s3Flags(t *testing.T) []string {
	t.Helper()
	ep := os.Getenv("STEWARD_TEST_S3_ENDPOINT")
	if ep == "" {
		if os.Getenv("STEWARD_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatal("STEWARD_TEST_S3_ENDPOINT is not set but STEWARD_TEST_REQUIRE_SERVICES=1")
		}
		return nil
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	return []string{"--files", "s3", "--s3-endpoint", ep, "--s3-bucket", os.Getenv("STEWARD_TEST_S3_BUCKET"),
		"--s3-access-key", os.Getenv("STEWARD_TEST_S3_ACCESS_KEY"), "--s3-secret-key", os.Getenv("STEWARD_TEST_S3_SECRET_KEY"),
		"--s3-tls=false", "--s3-prefix", "t" + hex.EncodeToString(b[:]) + "/"}
}

// eachStorage runs fn on every engine with every file backend.
func eachStorage(t *testing.T, extra []string, fn func(t *testing.T, h *apptest.Harness)) {
	t.Helper()
	for _, engine := range []string{"sqlite", "postgres"} {
		for _, backend := range []string{"disk", "s3"} {
			t.Run(engine+"-"+backend, func(t *testing.T) {
				t.Parallel()
				var dbURL string
				if engine == "postgres" {
					if dbURL = storetest.PostgresURL(t); dbURL == "" {
						t.Skip("STEWARD_TEST_POSTGRES_URL not set")
					}
				}
				flags := append([]string(nil), extra...)
				if backend == "s3" {
					s3 := s3Flags(t)
					if s3 == nil {
						t.Skip("STEWARD_TEST_S3_ENDPOINT not set")
					}
					flags = append(flags, s3...)
				}
				fn(t, apptest.Start(t, dbURL, flags...))
			})
		}
	}
}

// upload sends body raw (or as multipart) and returns the answer.
func upload(h *apptest.Harness, token, name string, body []byte, multi bool) apptest.Response {
	h.T.Helper()
	var req *http.Request
	if multi {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		_ = mw.WriteField("note", "ignored")
		fw, _ := mw.CreateFormFile("file", name)
		fw.Write(body)
		mw.Close()
		req, _ = http.NewRequest("POST", h.URL+"/api/v1/me/files", &buf)
		req.Header.Set("Content-Type", mw.FormDataContentType())
	} else {
		req, _ = http.NewRequest("POST", h.URL+"/api/v1/me/files?name="+name, bytes.NewReader(body))
		req.Header.Set("Content-Type", "text/plain")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := h.Client.Do(req)
	if err != nil {
		h.T.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return apptest.Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

func get(h *apptest.Harness, token, path string, hdr map[string]string) apptest.Response {
	h.T.Helper()
	req, _ := http.NewRequest("GET", h.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := h.Client.Do(req)
	if err != nil {
		h.T.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return apptest.Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

func random(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestFilesLifecycle(t *testing.T) {
	eachStorage(t, nil, func(t *testing.T, h *apptest.Harness) {
		ctx := context.Background()
		ownerID, owner := h.Member("files.owner@example.org", pw, map[string]any{"name": "File Owner"})
		_, other := h.Member("files.other@example.org", pw, nil)

		small := []byte("hello, confidential world\n")
		big := random(3*65536 + 1234) // several encryption segments
		r1 := upload(h, owner, "notes.txt", small, false)
		r2 := upload(h, owner, "../../secret.bin", big, true)
		r3 := upload(h, owner, url.QueryEscape("evil\r\nX-Evil: 1.txt"), []byte("x"), false)
		if name := r3.JSON()["name"]; name != "evil  X-Evil: 1.txt" {
			t.Errorf("sanitized name = %q", name)
		}
		if r := h.Do("DELETE", "/api/v1/me/files/"+r3.JSON()["id"].(string), nil, owner); r.Status != 204 {
			t.Errorf("delete = %d", r.Status)
		}
		if r1.Status != 201 || r2.Status != 201 {
			t.Fatalf("uploads = %d %s / %d %s", r1.Status, r1.Body, r2.Status, r2.Body)
		}
		if r1.JSON()["sha256"] != sum(small) || r2.JSON()["sha256"] != sum(big) || r2.JSON()["size"] != float64(len(big)) {
			t.Errorf("recorded checksums/sizes wrong: %s / %s", r1.Body, r2.Body)
		}
		if name := r2.JSON()["name"]; name != "secret.bin" {
			t.Errorf("sanitized name = %q", name)
		}
		id1, id2 := r1.JSON()["id"].(string), r2.JSON()["id"].(string)

		list := get(h, owner, "/api/v1/me/files", nil)
		if n := len(list.JSON()["files"].([]any)); n != 2 || list.JSON()["used"] != float64(len(small)+len(big)) {
			t.Errorf("list = %s", list.Body)
		}

		d := get(h, owner, "/api/v1/me/files/"+id2, nil)
		if d.Status != 200 || !bytes.Equal(d.Body, big) {
			t.Fatalf("download = %d, %d bytes, equal %v", d.Status, len(d.Body), bytes.Equal(d.Body, big))
		}
		for k, want := range map[string]string{
			"Content-Disposition":     "attachment; filename=",
			"X-Content-Type-Options":  "nosniff",
			"Content-Security-Policy": "sandbox",
			"Content-Type":            "application/octet-stream",
		} {
			if got := d.Header.Get(k); !strings.Contains(got, want) {
				t.Errorf("%s = %q, want %q", k, got, want)
			}
		}
		if cd := d.Header.Get("Content-Disposition"); strings.ContainsAny(cd, "\r\n") {
			t.Errorf("header injection in %q", cd)
		}
		// A range across a segment boundary.
		rg := get(h, owner, "/api/v1/me/files/"+id2, map[string]string{"Range": "bytes=65530-65545"})
		if rg.Status != 206 || !bytes.Equal(rg.Body, big[65530:65546]) || rg.Header.Get("Content-Range") != fmt.Sprintf("bytes 65530-65545/%d", len(big)) {
			t.Errorf("range = %d %q %q", rg.Status, rg.Header.Get("Content-Range"), rg.Body)
		}
		tail := get(h, owner, "/api/v1/me/files/"+id2, map[string]string{"Range": "bytes=-100"})
		if tail.Status != 206 || !bytes.Equal(tail.Body, big[len(big)-100:]) {
			t.Errorf("suffix range = %d, %d bytes", tail.Status, len(tail.Body))
		}

		// Many ranges get the whole file: each would decrypt a segment again, and a
		// thousand of them cost the server what the file costs a thousand times.
		var many []string
		for i := range 1000 {
			at := (i * 7919) % len(big)
			many = append(many, fmt.Sprintf("%d-%d", at, at))
		}
		mr := get(h, owner, "/api/v1/me/files/"+id2, map[string]string{"Range": "bytes=" + strings.Join(many, ",")})
		if mr.Status != 200 || !bytes.Equal(mr.Body, big) {
			t.Errorf("a thousand ranges = %d, %d bytes, want the whole file", mr.Status, len(mr.Body))
		}
		two := get(h, owner, "/api/v1/me/files/"+id2, map[string]string{"Range": "bytes=0-9,65540-65549"})
		if two.Status != 206 || !strings.HasPrefix(two.Header.Get("Content-Type"), "multipart/byteranges") ||
			!bytes.Contains(two.Body, big[65540:65550]) {
			t.Errorf("two ranges = %d %q", two.Status, two.Header.Get("Content-Type"))
		}

		// Another member can neither read nor delete it, and the owner sees the attempt.
		if r := get(h, other, "/api/v1/me/files/"+id1, nil); r.Status != 404 {
			t.Errorf("other member's download = %d", r.Status)
		}
		if r := h.Do("DELETE", "/api/v1/me/files/"+id1, nil, other); r.Status != 404 {
			t.Errorf("other member's delete = %d", r.Status)
		}
		if r := get(h, other, "/api/v1/me/files", nil); len(r.JSON()["files"].([]any)) != 0 {
			t.Errorf("other member lists the owner's files: %s", r.Body)
		}
		acc := get(h, owner, "/api/v1/me/file-access", nil).JSON()["access"].([]any)
		var actions []string
		for _, e := range acc {
			actions = append(actions, e.(map[string]any)["action"].(string))
		}
		if got := strings.Join(actions, ","); got != "denied,denied,download,delete,upload,upload,upload" {
			t.Errorf("access log = %s", got)
		}

		// The export carries the decrypted files.
		files := unzip(t, get(h, owner, "/api/v1/me/export", nil).Body)
		if files["files/files/"+id1+"-notes.txt"] != string(small) || files["files/files/"+id2+"-secret.bin"] != string(big) {
			t.Errorf("export lacks the files: %v", keys(files))
		}

		if r := h.Do("DELETE", "/api/v1/me/files/"+id1, nil, owner); r.Status != 204 {
			t.Fatalf("delete = %d %s", r.Status, r.Body)
		}
		if r := get(h, owner, "/api/v1/me/files/"+id1, nil); r.Status != 404 {
			t.Errorf("deleted file still downloads: %d", r.Status)
		}

		// Erasure: rows, objects and the key go; the residue check says so.
		before, err := h.App.Registry().CheckResidue(ctx, ownerID)
		if err != nil || len(before) == 0 {
			t.Fatalf("residue check before erasure found nothing (%v)", err)
		}
		del := h.Do("DELETE", "/api/v1/me", map[string]string{"password": pw}, owner)
		h.WaitErasure(del.JSON()["request_id"].(string))
		after, err := h.App.Registry().CheckResidue(ctx, ownerID)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range after {
			t.Errorf("after erasure: %s", f)
		}
		objects := 0
		h.App.Blobs().List(ctx, "files/", func(blob.Info) error { objects++; return nil })
		if objects != 0 {
			t.Errorf("%d object(s) left in storage", objects)
		}
	})
}

func TestFileLimitsLeaveNothing(t *testing.T) {
	eachStorage(t, []string{"--max-file-size", "1KiB", "--quota", "3000B"}, func(t *testing.T, h *apptest.Harness) {
		ctx := context.Background()
		_, token := h.Member("limits@example.org", pw, nil)
		for _, multi := range []bool{false, true} {
			r := upload(h, token, "big.bin", random(2048), multi)
			if _, code := r.ErrorField(); r.Status != http.StatusRequestEntityTooLarge || code != "file_too_large" {
				t.Errorf("over the file limit (multipart %v) = %d %s", multi, r.Status, r.Body)
			}
		}
		for i := range 3 {
			if r := upload(h, token, fmt.Sprintf("part%d.bin", i), random(900), i%2 == 1); r.Status != 201 {
				t.Fatalf("upload %d within quota = %d %s", i, r.Status, r.Body)
			}
		}
		if r := upload(h, token, "straw.bin", random(900), true); r.Status != http.StatusRequestEntityTooLarge {
			t.Errorf("over the quota = %d %s", r.Status, r.Body)
		}
		var rows int
		if err := h.App.DB().QueryRowContext(ctx, `SELECT count(*) FROM files`).Scan(&rows); err != nil || rows != 3 {
			t.Errorf("rows = %d (%v), want the 3 accepted", rows, err)
		}
		objects := 0
		h.App.Blobs().List(ctx, "files/", func(blob.Info) error { objects++; return nil })
		if objects != 3 {
			t.Errorf("objects = %d, want the 3 accepted: refused uploads left something", objects)
		}
		if r := upload(h, token, "", []byte("x"), false); r.Status != 400 {
			t.Errorf("raw upload without a name = %d", r.Status)
		}
	})
}

// An upload that was authorized before an erasure and sends its file after it stores
// nothing and leaves no key: it cannot bring the member back.
func TestUploadRacingErasure(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := context.Background()
		id, token := h.Member("racer@example.org", pw, nil)
		pr, pw := io.Pipe()
		mw := multipart.NewWriter(pw)
		req, _ := http.NewRequest("POST", h.URL+"/api/v1/me/files", pr)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.Header.Set("Authorization", "Bearer "+token)
		done := make(chan int, 1)
		go func() {
			resp, err := h.Client.Do(req)
			if err != nil {
				done <- 0
				return
			}
			resp.Body.Close()
			done <- resp.StatusCode
		}()
		// The file's part begins: the request is in, past its authorization, and the
		// upload has its row and is waiting for the content.
		fw, _ := mw.CreateFormFile("file", "late.bin")
		deadline := time.Now().Add(10 * time.Second)
		for countRows(t, h, `SELECT count(*) FROM files WHERE state = 'uploading'`) == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the upload never began")
			}
			time.Sleep(5 * time.Millisecond) // polling for the row, not ordering events
		}
		if err := h.App.Rights().EraseNow(ctx, id, "test"); err != nil {
			t.Fatal(err)
		}
		fw.Write(random(5000))
		mw.Close()
		pw.Close()
		if st := <-done; st != http.StatusUnauthorized {
			t.Errorf("late upload = %d, want 401", st)
		}
		if has, _ := h.App.Vault().HasKey(ctx, id); has {
			t.Error("the erased member has a data key again")
		}
		var rows int
		h.App.DB().QueryRowContext(ctx, `SELECT count(*) FROM files WHERE owner_id = $1`, id).Scan(&rows)
		objects := 0
		h.App.Blobs().List(ctx, "files/", func(blob.Info) error { objects++; return nil })
		if rows != 0 || objects != 0 {
			t.Errorf("after the late upload: %d rows, %d objects", rows, objects)
		}
	})
}
