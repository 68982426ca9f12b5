package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"steward/internal/apperr"
	"steward/internal/blob"
	"steward/internal/files"
	"steward/internal/server"
	"steward/internal/store/storetest"
	"steward/internal/vault"
)

// requestTypes makes a fresh value of each request body the API decodes.
var requestTypes = []func() any{
	func() any { return new(registerRequest) },
	func() any { return new(tokenRequest) },
	func() any { return new(guardianDecision) },
	func() any { return new(loginRequest) },
	func() any { return new(resetRequest) },
	func() any { return new(confirmResetRequest) },
	func() any { return new(changePasswordRequest) },
	func() any { return new(putConsentsRequest) },
	func() any { return new(patchRequest) },
	func() any { return new(deleteRequest) },
	func() any { return new(subscribeRequest) },
	func() any { return new(campaignRequest) },
}

// Any body DecodeJSON is given, into any of the API's request types, is either refused
// as invalid (or too large) input, never another kind of error, or is one valid JSON
// object (or null) that decodes to a value of the type: encoded again, it decodes to
// the same value.
func FuzzDecodeJSON(f *testing.F) {
	for i, s := range []string{
		`{"email":"ada@example.org","password":"correct horse battery","name":"Ada","birthdate":"1985-03-02","country":"GB"}`,
		`{"email":"a@example.org","EMAIL":"b@example.org"}`,
		`{"email":"a@example.org","email":"b@example.org"}`,
		`{"token":"abc"}{"token":"def"}`,
		`{"token":"abc"} x`,
		`{"choices":{"newsletter":true,"Newsletter":false},"restricted":null}`,
		`{"birthdate":"1990-01-01","public":{"name":true}}`,
		`{"name":"Eve\r\nBcc: victim@example.com\r\n\r\nInjected body"}`,
		`{"\u0065mail":"x"}`,
		`{"unknown":1}`,
		`{"agree":"yes"}`,
		`null`,
		`[]`,
		"\xef\xbb\xbf{}",
		`{"name":"` + strings.Repeat("a", 70000) + `"}`,
		strings.Repeat(`{"public":`, 10000),
	} {
		f.Add([]byte(s), uint8(i), "application/json")
	}
	f.Add([]byte(`{}`), uint8(0), "text/plain")
	f.Fuzz(func(t *testing.T, body []byte, which uint8, ctype string) {
		mk := requestTypes[int(which)%len(requestTypes)]
		v := mk()
		err := decode(body, ctype, v)
		if err != nil {
			if e, ok := apperr.As(err); !ok || (e.Kind != apperr.Invalid && e.Kind != apperr.TooLarge) {
				t.Fatalf("DecodeJSON(%q): %v, want an invalid or too large input", body, err)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("DecodeJSON accepted %q, which is not JSON", body)
		}
		if trimmed := bytes.TrimSpace(body); trimmed[0] != '{' && string(trimmed) != "null" {
			t.Fatalf("DecodeJSON accepted %q, which is not an object", body)
		}
		again, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		w := mk()
		if err := decode(again, "application/json", w); err != nil || !reflect.DeepEqual(v, w) {
			t.Fatalf("%T %s decoded again: %+v, %v; want %+v", v, again, w, err, v)
		}
	})
}

func decode(body []byte, ctype string, v any) error {
	r := httptest.NewRequest("POST", "/api/v1/x", bytes.NewReader(body))
	if ctype != "" {
		r.Header.Set("Content-Type", ctype)
	}
	return server.DecodeJSON(httptest.NewRecorder(), r, v)
}

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
	fs := files.New(db, blobs, v, files.Limits{MaxFileSize: 1 << 20, Quota: 1 << 21}, now, log)
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
		ServeFile(w, r, fs, "owner-1", file.ID, "192.0.2.1", func(w http.ResponseWriter, r *http.Request, err error) {
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
