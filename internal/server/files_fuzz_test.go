package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"steward/internal/apperr"
	"steward/internal/blob"
	"steward/internal/files"
	"steward/internal/store/storetest"
	"steward/internal/vault"
)

// An upload's body, multipart or raw, is read without panicking: a form it cannot
// read is refused as invalid input, and an upload it takes has a name and a body that
// reads to its end (or to an error) without panicking.
func FuzzUploadFrom(f *testing.F) {
	for _, s := range []string{
		"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"notes.txt\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--B--\r\n",
		"--B\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\r\nb.txt\"\r\n\r\nhi\r\n--B--\r\n",
		"--B\r\nContent-Disposition: form-data; name=\"file\"; filename*=UTF-8''%E2%80%AEgnp.exe\r\n\r\nx\r\n--B--\r\n",
		"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"../../etc/passwd\"\r\n\r\nx\r\n--B",
		"--B\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nno file name\r\n--B--\r\n",
		strings.Repeat("--B\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n\r\n", 20) + "--B--\r\n",
		"--B\r\n" + strings.Repeat("X-Long: "+strings.Repeat("a", 1000)+"\r\n", 100) + "\r\n--B--\r\n",
		"",
	} {
		f.Add([]byte(s), "multipart/form-data; boundary=B", "")
	}
	f.Add([]byte("raw bytes"), "text/plain", "notes.txt")
	f.Add([]byte("raw"), "", "")
	f.Add([]byte("x"), "multipart/form-data", "")
	f.Fuzz(func(t *testing.T, body []byte, ctype, name string) {
		r := httptest.NewRequest("POST", "/api/v1/me/files?name="+queryEscape(name), bytes.NewReader(body))
		r.Header.Set("Content-Type", ctype)
		up, err := UploadFrom(r)
		if err != nil {
			if e, ok := apperr.As(err); !ok || e.Kind != apperr.Invalid {
				t.Fatalf("UploadFrom: %v, want an invalid input", err)
			}
			return
		}
		if up.Name == "" || up.Body == nil {
			t.Fatalf("UploadFrom took an upload without a name or body: %+v", up)
		}
		n, _ := io.Copy(io.Discard, up.Body)
		if n > int64(len(body)) {
			t.Fatalf("the upload's body read %d bytes of a %d-byte request", n, len(body))
		}
	})
}

func queryEscape(s string) string { return url.QueryEscape(s) }

// A download's Range header, whatever it says, is answered from the file as stored
// (encrypted in 64 KiB segments): the whole file, one part or several, each part the
// exact plaintext bytes of its range, never more parts than MaxRanges; or 416.
// The file is real: uploaded through the files service into a disk store, on SQLite.
func FuzzRange(f *testing.F) {
	ctx := context.Background()
	dir := f.TempDir()
	db := storetest.Open(f, "sqlite:"+filepath.Join(dir, "steward.db"))
	log := slog.New(slog.DiscardHandler)
	now := func() time.Time { return time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC) }
	v, err := vault.Open(ctx, db, vault.Config{KeyFile: filepath.Join(dir, "kek"), Create: true}, now, log)
	if err != nil {
		f.Fatal(err)
	}
	blobs, err := blob.NewDisk(filepath.Join(dir, "blobs"))
	if err != nil {
		f.Fatal(err)
	}
	fs := files.New(db, blobs, v, files.Limits{MaxFileSize: 1 << 20, Quota: 1 << 21}, nil, now, log)
	plain := make([]byte, 3*64<<10+1234) // four segments, the last one short
	for i := range plain {
		plain[i] = byte(i*7 + i/251)
	}
	file, err := fs.Upload(ctx, "owner-1", files.Upload{Name: "data.bin", ContentType: "application/octet-stream", Size: int64(len(plain)), Body: bytes.NewReader(plain)})
	if err != nil {
		f.Fatal(err)
	}
	size := len(plain)
	many := make([]string, 50000)
	for i := range many {
		many[i] = fmt.Sprintf("%d-%d", (i*8191)%size, (i*8191)%size)
	}
	for _, s := range []string{
		"bytes=0-0", "bytes=0-99", "bytes=65530-65545", "bytes=-1", "bytes=-300000", "bytes=196000-", "bytes=0-0,196607-196608,1-1",
		"bytes=5-4", "bytes=999999-", "bytes=0-0,-1", "bytes= 1 - 2 , 3-4", "bytes=0-18446744073709551616", "items=0-1",
		"bytes=" + strings.Join(many[:17], ","), "bytes=" + strings.Join(many, ","), "bytes=,,,,", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rg string) {
		r := httptest.NewRequest("GET", "/api/v1/me/files/"+file.ID, nil)
		r.Header.Set("Range", rg)
		w := httptest.NewRecorder()
		(&Services{Files: fs}).ServeFile(w, r, "owner-1", file.ID, func(w http.ResponseWriter, r *http.Request, err error) {
			t.Fatalf("ServeFile failed: %v", err)
		})
		res := w.Result()
		body := w.Body.Bytes()
		switch res.StatusCode {
		case http.StatusOK:
			if !bytes.Equal(body, plain) {
				t.Fatalf("200 with %d bytes, want the %d of the file", len(body), size)
			}
		case http.StatusRequestedRangeNotSatisfiable:
		case http.StatusPartialContent:
			mt, params, err := mime.ParseMediaType(res.Header.Get("Content-Type"))
			if err != nil {
				t.Fatal(err)
			}
			if mt != "multipart/byteranges" {
				checkPart(t, res.Header.Get("Content-Range"), body, plain)
				return
			}
			mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
			parts := 0
			for {
				p, err := mr.NextPart()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("part %d: %v", parts, err)
				}
				b, err := io.ReadAll(p)
				if err != nil {
					t.Fatalf("part %d: %v", parts, err)
				}
				checkPart(t, p.Header.Get("Content-Range"), b, plain)
				parts++
			}
			if parts > MaxRanges || parts < 2 {
				t.Fatalf("%d parts answered to %q", parts, rg)
			}
		default:
			t.Fatalf("status %d to Range %q", res.StatusCode, rg)
		}
	})
}

// checkPart checks that b is the plaintext range Content-Range names.
func checkPart(t *testing.T, cr string, b, plain []byte) {
	t.Helper()
	spec, ok := strings.CutPrefix(cr, "bytes ")
	rng, total, ok2 := strings.Cut(spec, "/")
	first, last, ok3 := strings.Cut(rng, "-")
	a, err1 := strconv.Atoi(first)
	z, err2 := strconv.Atoi(last)
	if ok && ok2 && ok3 && err1 == nil && err2 == nil && a == len(plain) && z == a-1 && len(b) == 0 {
		// "bytes=-0": net/http answers a suffix of no bytes with an empty part (RFC
		// 9110 would have 416). Nothing of the file is given: harmless.
		return
	}
	if !ok || !ok2 || !ok3 || err1 != nil || err2 != nil || total != strconv.Itoa(len(plain)) || a > z || z >= len(plain) {
		t.Fatalf("Content-Range %q", cr)
	}
	if !bytes.Equal(b, plain[a:z+1]) {
		t.Fatalf("Content-Range %q: %d bytes that are not the file's", cr, len(b))
	}
}
