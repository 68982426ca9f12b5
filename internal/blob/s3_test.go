package blob

import (
	"bytes"
	"context"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

// TestS3Leftovers proves the contract's check for unfinished multipart uploads can see
// one, so that its passing means something.
func TestS3Leftovers(t *testing.T) {
	t.Parallel()
	s := openS3(t).(*S3)
	ctx := t.Context()
	id, err := s.core.NewMultipartUpload(ctx, s.bucket, s.key("pending"), minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := s3Leftovers(t, s, "pending"); len(got) != 1 || !strings.Contains(got[0], id) {
		t.Fatalf("leftovers: got %q, want the upload %s", got, id)
	}
	// A failed Put of the same name also removes that stale upload.
	if _, err := s.Put(ctx, "pending", newFailingReader(mib, errBoom), -1); err == nil {
		t.Fatal("Put: no error")
	}
	if got := s3Leftovers(t, s, "pending"); len(got) != 0 {
		t.Errorf("leftovers after failed Put: got %q, want none", got)
	}
}

// TestS3Object checks what an object looks like in the bucket: under Prefix, typed
// application/octet-stream, without user metadata.
func TestS3Object(t *testing.T) {
	t.Parallel()
	s := openS3(t).(*S3)
	ctx := t.Context()
	for _, c := range []struct {
		name string
		size int64
	}{{"sized", 3}, {"streamed", -1}} {
		put := []byte("abc")
		if _, err := s.Put(ctx, "files/"+c.name, bytes.NewReader(put), c.size); err != nil {
			t.Fatal(err)
		}
		oi, err := s.client.StatObject(ctx, s.bucket, s.prefix+"files/"+c.name, minio.StatObjectOptions{})
		if err != nil {
			t.Fatalf("%s: object not under the prefix: %v", c.name, err)
		}
		if oi.ContentType != "application/octet-stream" {
			t.Errorf("%s: content type %q, want application/octet-stream", c.name, oi.ContentType)
		}
		if len(oi.UserMetadata) != 0 || len(oi.UserTags) != 0 {
			t.Errorf("%s: user metadata %v, tags %v; want none", c.name, oi.UserMetadata, oi.UserTags)
		}
	}
	// Keys outside the prefix are not ours: List does not see them.
	other := openS3(t).(*S3)
	if got := list(t, other, ""); len(got) != 0 {
		t.Errorf("another prefix lists %q", got)
	}
}

func TestNewS3Config(t *testing.T) {
	t.Parallel()
	base := s3Config(t)
	for _, c := range []struct {
		name string
		edit func(*S3Config)
	}{
		{"no endpoint", func(c *S3Config) { c.Endpoint = "" }},
		{"scheme", func(c *S3Config) { c.Endpoint = "http://" + c.Endpoint }},
		{"no bucket", func(c *S3Config) { c.Bucket = "" }},
		{"bad prefix", func(c *S3Config) { c.Prefix = "../x/" }},
		{"upper-case prefix", func(c *S3Config) { c.Prefix = "Steward/" }},
		{"part too small", func(c *S3Config) { c.PartSize = 4 * mib }},
		{"missing bucket", func(c *S3Config) { c.Bucket = "steward-missing-" + randomHex(4); c.CreateBucket = false }},
		{"wrong secret", func(c *S3Config) { c.SecretKey = "wrong" + randomHex(4) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := base
			c.edit(&cfg)
			if _, err := NewS3(t.Context(), cfg); err == nil {
				t.Errorf("NewS3 with %s: no error", c.name)
			}
		})
	}
}

// TestS3PutMemory checks that a Put holds about one part in memory, whatever the
// object's size: during a 128 MiB upload the live heap grows by less than 3 parts
// (minio-go holds one PartSize buffer per Put; per-chunk signing makes small garbage).
// Not parallel, so that the heap is this test's own.
func TestS3PutMemory(t *testing.T) {
	s := openS3(t).(*S3)
	size := int64(128 * mib)
	if v, err := strconv.ParseInt(os.Getenv("STEWARD_TEST_BLOB_MEMORY_MIB"), 10, 64); err == nil && v > 0 {
		size = v * mib // e.g. 2048 to check a 2 GiB upload
	}
	for _, c := range []struct {
		name string
		size int64
	}{{"streamed", -1}, {"sized", size}} {
		t.Run(c.name, func(t *testing.T) {
			runtime.GC()
			base := heapBytes()
			var peak atomic.Uint64
			done := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() {
				tick := time.NewTicker(2 * time.Millisecond)
				defer tick.Stop()
				for {
					if h := heapBytes(); h > peak.Load() {
						peak.Store(h)
					}
					select {
					case <-done:
						return
					case <-tick.C:
					}
				}
			})
			start := time.Now()
			_, err := s.Put(context.Background(), "mem/"+c.name, stream(10, size), c.size)
			close(done)
			wg.Wait()
			if err != nil {
				t.Fatal(err)
			}
			grow := peak.Load() - min(base, peak.Load())
			t.Logf("Put of %d MiB (size %d) in %v: heap peak %.1f MiB above the %.1f MiB before",
				size/mib, c.size, time.Since(start).Round(time.Millisecond), float64(grow)/mib, float64(base)/mib)
			if limit := 3 * s.partSize; grow > limit {
				t.Errorf("heap grew by %d MiB during Put, want under %d MiB", grow/mib, limit/mib)
			}
		})
	}
}

// heapBytes is the heap held by objects, live or not yet collected.
func heapBytes() uint64 {
	m := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(m)
	return m[0].Value.Uint64()
}
