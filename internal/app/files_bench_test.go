package app_test

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	"steward/internal/app/apptest"
)

// BenchmarkUpload measures an upload through the HTTP API into the disk store.
func BenchmarkUpload(b *testing.B) {
	h := apptest.Start(b, "", "--max-file-size", "64GiB", "--quota", "1024GiB")
	_, token := h.Member("bench.upload@example.org", pw, nil)
	body := random(64 << 20)
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for range b.N {
		req, _ := http.NewRequest("POST", h.URL+"/api/v1/me/files?name=b.bin", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := h.Client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 201 {
			b.Fatal(resp.StatusCode)
		}
	}
}
