package web_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"steward/internal/store/storetest"
)

// upload posts the files page's form with one file, as a browser does.
func (c *client) upload(name string, content []byte) page {
	c.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	part, err := mw.CreateFormFile("file", name)
	if err != nil {
		c.t.Fatal(err)
	}
	part.Write(content)
	if err := mw.Close(); err != nil {
		c.t.Fatal(err)
	}
	return c.send(http.MethodPost, "/account/files", &body, http.Header{"Content-Type": {mw.FormDataContentType()}})
}

// objects counts the file objects the disk store holds.
func (s *site) objects() int {
	s.t.Helper()
	n := 0
	err := filepath.WalkDir(filepath.Join(s.data, "files", "files"), func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			n++
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		s.t.Fatal(err)
	}
	return n
}

var downloadLink = regexp.MustCompile(`href="/account/files/([0-9a-f]+)/download"`)

// content is a file of n bytes that differ from one place to the next.
func content(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/256)
	}
	return b
}

// TestFiles uploads, lists, downloads and deletes a file through the pages, and shows
// that another member can neither download nor delete it, on every engine.
func TestFiles(t *testing.T) {
	t.Parallel()
	for dialect, dbURL := range storetest.Engines(t) {
		t.Run(string(dialect), func(t *testing.T) {
			t.Parallel()
			testFiles(t, start(t, dbURL))
		})
	}
}

func testFiles(t *testing.T, s *site) {
	c := s.client()
	s.signUp(t, c, "rosalind@example.com", "Rosalind Franklin", "photograph fifty one")
	c.get("/account").want(t, "account", http.StatusOK, `<a href="/account/files">Files</a>`)

	p := c.get("/account/files")
	p.want(t, "empty files page", http.StatusOK, "No files yet.", "0 bytes</span> of", "10 GB</span> used", "4 GB</span> per file",
		`enctype="multipart/form-data"`, `action="/account/files"`, `type="file"`, `name="file"`, "No access yet.")
	if got := p.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("files page Cache-Control = %q, want no-store", got)
	}

	// Upload.
	data := content(3000)
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:])
	c.upload("photo 51.txt", data).wantRedirect(t, "upload", "/account/files?uploaded=1")
	p = c.get("/account/files?uploaded=1")
	p.want(t, "files page", http.StatusOK, "File uploaded.", "photo 51.txt", `<code class="digest">`+digest+`</code>`,
		`title="3000 bytes">2.9 KB<`, "2.9 KB</span> of", "Uploaded: photo 51.txt", "by you from 127.0.0.1")
	if strings.Contains(p.body, "No files yet.") {
		t.Error("the page says there are no files")
	}
	m := downloadLink.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no download link:\n%s", p.body)
	}
	id := m[1]
	if !strings.Contains(p.body, `href="/account/files/`+id+`/delete"`) || strings.Contains(p.body, `action="/account/files/`+id+`/delete"`) {
		t.Errorf("no link to delete %s, or a button that deletes at one click", id)
	}

	// Download: the same bytes, as an attachment the browser never renders.
	p = c.get("/account/files/" + id + "/download")
	p.want(t, "download", http.StatusOK)
	if p.body != string(data) {
		t.Errorf("download has %d bytes that differ from the %d uploaded", len(p.body), len(data))
	}
	for h, want := range map[string]string{
		"Content-Disposition":     `attachment; filename="photo 51.txt"`,
		"X-Content-Type-Options":  "nosniff",
		"Content-Security-Policy": "sandbox",
		"Content-Type":            "application/octet-stream",
	} {
		if got := p.header.Get(h); !strings.Contains(got, want) {
			t.Errorf("download %s = %q, want it to contain %q", h, got, want)
		}
	}

	// A range.
	p = c.send(http.MethodGet, "/account/files/"+id+"/download", nil, http.Header{"Range": {"bytes=10-19"}})
	p.want(t, "range", http.StatusPartialContent)
	if p.body != string(data[10:20]) {
		t.Errorf("range = %x, want %x", p.body, data[10:20])
	}
	if got := p.header.Get("Content-Range"); got != "bytes 10-19/3000" {
		t.Errorf("Content-Range = %q", got)
	}

	// Another member finds nothing, and the owner sees the attempt.
	other := s.client()
	s.signUp(t, other, "maurice@example.com", "Maurice Wilkins", "a different passphrase")
	other.get("/account/files/"+id+"/download").want(t, "other's download", http.StatusNotFound, "Page not found")
	other.post("/account/files/"+id+"/delete", url.Values{}).want(t, "other's delete", http.StatusNotFound, "Page not found")
	other.get("/account/files").want(t, "other's files", http.StatusOK, "No files yet.", "No access yet.")
	p = c.get("/account/files")
	p.want(t, "files after the attempt", http.StatusOK, "photo 51.txt")
	refused := regexp.MustCompile(`Attempted download: photo 51.txt</p>\s*<p class="meta">([^<]*)</p>`).FindStringSubmatch(p.body)
	if refused == nil {
		t.Fatalf("the access log shows no refused download:\n%s", p.body)
	}
	if !strings.Contains(refused[1], "by another member (refused)") || strings.Contains(refused[1], " from ") {
		t.Errorf("refused access reads %q; want another member, without their address", refused[1])
	}
	c.get("/account/files/"+strings.Repeat("0", 32)+"/download").want(t, "unknown download", http.StatusNotFound, "Page not found")

	// Delete.
	// Delete asks first, on a page of its own; the other member gets no such page.
	other.get("/account/files/"+id+"/delete").want(t, "other's delete page", http.StatusNotFound, "Page not found")
	p = c.get("/account/files/" + id + "/delete")
	p.want(t, "delete page", http.StatusOK, "cannot be undone", `action="/account/files/`+id+`/delete"`, "Yes, delete it", `href="/account/files"`)
	c.get("/account/files").want(t, "files after asking", http.StatusOK, `href="/account/files/`+id+`/download"`)
	c.post("/account/files/"+id+"/delete", url.Values{}).wantRedirect(t, "delete", "/account/files?deleted=1")
	p = c.get("/account/files?deleted=1")
	p.want(t, "files after delete", http.StatusOK, "File deleted.", "No files yet.", "0 bytes</span> of",
		"Uploaded: photo 51.txt", "Downloaded: photo 51.txt", "Deleted: photo 51.txt")
	if strings.Contains(p.body, "since deleted") {
		t.Error("the access log no longer names the deleted file")
	}
	c.get("/account/files/"+id+"/download").want(t, "download after delete", http.StatusNotFound, "Page not found")
	c.post("/account/files/"+id+"/delete", url.Values{}).want(t, "delete again", http.StatusNotFound, "Page not found")
	if n := s.objects(); n != 0 {
		t.Errorf("%d objects left after the delete", n)
	}
}

func TestFileTooLarge(t *testing.T) {
	t.Parallel()
	s := start(t, "", "--max-file-size", "1KiB")
	c := s.client()
	s.signUp(t, c, "claude@example.com", "Claude Shannon", "information theory 1948")
	c.get("/account/files").want(t, "files page", http.StatusOK, "1 KB</span> per file", "Up to 1 KB per file.")

	p := c.upload("big.bin", content(4096))
	p.want(t, "too large", http.StatusRequestEntityTooLarge, "The file is over the limit of 1024 bytes", `id="form-error"`,
		"No files yet.", "0 bytes</span> of")
	if n := s.objects(); n != 0 {
		t.Errorf("a refused upload left %d objects", n)
	}
	c.get("/account/files").want(t, "files page", http.StatusOK, "No files yet.", "No access yet.")

	// Exactly the limit fits.
	c.upload("fits.bin", content(1024)).wantRedirect(t, "upload at the limit", "/account/files?uploaded=1")
	if n := s.objects(); n != 1 {
		t.Errorf("%d objects, want 1", n)
	}
}

func TestFileFormErrors(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	c := s.client()
	s.signUp(t, c, "barbara@example.com", "Barbara Liskov", "substitution principle")

	// No file chosen: the browser sends the part without a file name.
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	part, _ := mw.CreateFormFile("file", "")
	part.Write(nil)
	mw.Close()
	p := c.send(http.MethodPost, "/account/files", &body, http.Header{"Content-Type": {mw.FormDataContentType()}})
	p.want(t, "no file", http.StatusBadRequest, `id="f-file-error"`, "File is required.")

	// Not the form at all.
	c.post("/account/files", url.Values{"file": {"hello"}}).want(t, "urlencoded", http.StatusBadRequest, "File is required.")

	// A name that holds a card number is refused beside the field.
	c.upload("card 4111 1111 1111 1111.txt", []byte("x")).
		want(t, "card number", http.StatusBadRequest, `id="f-file-error"`, "File name looks like a payment card number")
	c.get("/account/files").want(t, "files page", http.StatusOK, "No files yet.")
}

func TestFileNameEscaped(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	c := s.client()
	s.signUp(t, c, "eve@example.com", "Eve Example", "a perfectly fine passphrase")
	const name = `<b onmouseover=x>.txt`
	c.upload(name, []byte("hello")).wantRedirect(t, "upload", "/account/files?uploaded=1")
	p := c.get("/account/files")
	p.want(t, "files page", http.StatusOK, "&lt;b onmouseover=x&gt;.txt")
	if strings.Contains(p.body, "<b onmouseover") {
		t.Errorf("the name is not escaped:\n%s", p.body)
	}
}
