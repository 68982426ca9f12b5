package blob

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	mrand "math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const mib = 1 << 20

// backend is one Store implementation under the contract tests.
type backend struct {
	name string
	// open returns an empty store of the test's own.
	open func(t testing.TB) Store
	// leftovers lists what a failed Put of name may have left besides the object: temp
	// files (Disk) or unfinished multipart uploads (S3).
	leftovers func(t *testing.T, s Store, name string) []string
}

// backends returns Disk, and S3 when STEWARD_TEST_S3_ENDPOINT is set. Without it the S3
// subtests skip, or fail when STEWARD_TEST_REQUIRE_SERVICES=1.
func backends() []backend {
	return []backend{
		{name: "disk", open: openDisk, leftovers: diskLeftovers},
		{name: "s3", open: openS3, leftovers: s3Leftovers},
	}
}

func openDisk(t testing.TB) Store {
	t.Helper()
	d, err := NewDisk(t.TempDir() + "/blobs")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func diskLeftovers(t *testing.T, s Store, _ string) []string {
	t.Helper()
	ents, err := os.ReadDir(s.(*Disk).tmp)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, "temp file "+e.Name())
	}
	return out
}

// s3Config returns the test server's settings with a prefix of the test's own, or skips
// the test (fails it when services are required) if there is no server.
func s3Config(t testing.TB) S3Config {
	t.Helper()
	endpoint := os.Getenv("STEWARD_TEST_S3_ENDPOINT")
	if endpoint == "" {
		if os.Getenv("STEWARD_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatal("STEWARD_TEST_S3_ENDPOINT is not set but STEWARD_TEST_REQUIRE_SERVICES=1 (source scripts/test-services.sh)")
		}
		t.Skip("STEWARD_TEST_S3_ENDPOINT not set (source scripts/test-services.sh)")
	}
	bucket := os.Getenv("STEWARD_TEST_S3_BUCKET")
	if bucket == "" {
		bucket = "steward-test"
	}
	return S3Config{
		Endpoint:     endpoint,
		AccessKey:    os.Getenv("STEWARD_TEST_S3_ACCESS_KEY"),
		SecretKey:    os.Getenv("STEWARD_TEST_S3_SECRET_KEY"),
		Bucket:       bucket,
		Prefix:       "test-" + randomHex(8) + "/",
		CreateBucket: true,
	}
}

func openS3(t testing.TB) Store {
	t.Helper()
	return openS3With(t, s3Config(t))
}

// openS3With connects and removes everything under c.Prefix when the test ends.
func openS3With(t testing.TB, c S3Config) *S3 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := NewS3(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var names []string
		if err := s.List(ctx, "", func(i Info) error { names = append(names, i.Name); return nil }); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		for _, n := range names {
			if err := s.Delete(ctx, n); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	return s
}

// s3Leftovers lists the unfinished multipart uploads of name. (MinIO lists uploads
// only for an exact key, not for a wider prefix, so this asks about the one name.)
func s3Leftovers(t *testing.T, s Store, name string) []string {
	t.Helper()
	s3 := s.(*S3)
	var out []string
	for u := range s3.client.ListIncompleteUploads(t.Context(), s3.bucket, s3.key(name), true) {
		if u.Err != nil {
			t.Fatalf("list incomplete uploads: %v", u.Err)
		}
		out = append(out, "multipart upload "+u.Key+" "+u.UploadID)
	}
	return out
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// stream returns n deterministic pseudo-random bytes from seed, without holding them.
func stream(seed uint64, n int64) io.Reader {
	var s [32]byte
	s[0] = byte(seed)
	s[1] = byte(seed >> 8)
	return io.LimitReader(mrand.NewChaCha8(s), n)
}

func data(seed uint64, n int) []byte {
	b, err := io.ReadAll(stream(seed, int64(n)))
	if err != nil {
		panic(err)
	}
	return b
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// failingReader yields n bytes of data and then fails with err (or, with err nil, ends
// cleanly). If cancel is set it is called when the data is exhausted, and the reader
// keeps yielding data instead of failing.
type failingReader struct {
	r      io.Reader
	left   int64
	err    error
	cancel context.CancelFunc
}

func newFailingReader(n int64, err error) *failingReader {
	return &failingReader{r: stream(99, 1<<40), left: n, err: err}
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.left <= 0 {
		if f.cancel != nil {
			f.cancel()
			return f.r.Read(p)
		}
		if f.err == nil {
			return 0, io.EOF
		}
		return 0, f.err
	}
	if int64(len(p)) > f.left {
		p = p[:f.left]
	}
	n, err := f.r.Read(p)
	f.left -= int64(n)
	return n, err
}

func put(t *testing.T, s Store, name string, b []byte) {
	t.Helper()
	n, err := s.Put(t.Context(), name, bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("Put(%q): %v", name, err)
	}
	if n != int64(len(b)) {
		t.Fatalf("Put(%q) wrote %d bytes, want %d", name, n, len(b))
	}
}

func read(t *testing.T, s Store, name string, offset, length int64) []byte {
	t.Helper()
	r, err := s.Open(t.Context(), name, offset, length)
	if err != nil {
		t.Fatalf("Open(%q, %d, %d): %v", name, offset, length, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading %q: %v", name, err)
	}
	return b
}

func list(t *testing.T, s Store, prefix string) []string {
	t.Helper()
	var names []string
	err := s.List(t.Context(), prefix, func(i Info) error {
		names = append(names, i.Name)
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	slices.Sort(names)
	return names
}

// assertNothingLeft checks that a failed Put of name left no object, nothing in List
// and no temp file or multipart upload.
func assertNothingLeft(t *testing.T, b backend, s Store, name string) {
	t.Helper()
	if _, err := s.Stat(t.Context(), name); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat after failed Put: got %v, want ErrNotFound", err)
	}
	if got := list(t, s, ""); len(got) != 0 {
		t.Errorf("List after failed Put: got %q, want nothing", got)
	}
	if got := b.leftovers(t, s, name); len(got) != 0 {
		t.Errorf("failed Put left %q", got)
	}
}

// TestStore is the contract every Store meets, run against each backend.
func TestStore(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			b.open(t) // skips or fails now if the backend is unavailable
			t.Parallel()
			for _, c := range contract {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					c.test(t, b, b.open(t))
				})
			}
		})
	}
}

var contract = []struct {
	name string
	test func(t *testing.T, b backend, s Store)
}{
	{"RoundTrip", testRoundTrip},
	{"Empty", testEmpty},
	{"Ranges", testRanges},
	{"Missing", testMissing},
	{"List", testList},
	{"ListAfter", testListAfter},
	{"FailingReader", testFailingReader},
	{"Cancel", testCancel},
	{"SizeMismatch", testSizeMismatch},
	{"Overwrite", testOverwrite},
	{"InvalidNames", testInvalidNames},
	{"Streamed40MiB", testStreamed},
}

func testRoundTrip(t *testing.T, _ backend, s Store) {
	ctx := t.Context()
	want := data(1, 100_000)
	before := time.Now()
	put(t, s, "files/0a1b2c", want)

	if got := read(t, s, "files/0a1b2c", 0, -1); !bytes.Equal(got, want) {
		t.Fatalf("Open: got %d bytes (sha %s), want %d (sha %s)", len(got), sum(got), len(want), sum(want))
	}
	info, err := s.Stat(ctx, "files/0a1b2c")
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "files/0a1b2c" || info.Size != int64(len(want)) {
		t.Errorf("Stat: got %+v, want name files/0a1b2c, size %d", info, len(want))
	}
	// Server clocks may differ a little; a minute either way is plenty.
	if info.Modified.Before(before.Add(-time.Minute)) || info.Modified.After(time.Now().Add(time.Minute)) {
		t.Errorf("Stat: Modified %v, want about %v", info.Modified, before)
	}
	var infos []Info
	if err := s.List(ctx, "", func(i Info) error { infos = append(infos, i); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].Name != info.Name || infos[0].Size != info.Size {
		t.Errorf("List: got %+v, want [%+v]", infos, info)
	}

	if err := s.Delete(ctx, "files/0a1b2c"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx, "files/0a1b2c"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat after Delete: got %v, want ErrNotFound", err)
	}
	if _, err := s.Open(ctx, "files/0a1b2c", 0, -1); !errors.Is(err, ErrNotFound) {
		t.Errorf("Open after Delete: got %v, want ErrNotFound", err)
	}
	if got := list(t, s, ""); len(got) != 0 {
		t.Errorf("List after Delete: got %q, want nothing", got)
	}
}

func testEmpty(t *testing.T, _ backend, s Store) {
	ctx := t.Context()
	for _, size := range []int64{0, -1} {
		n, err := s.Put(ctx, "empty", bytes.NewReader(nil), size)
		if err != nil || n != 0 {
			t.Fatalf("Put(empty, size %d): got %d, %v; want 0, nil", size, n, err)
		}
		info, err := s.Stat(ctx, "empty")
		if err != nil || info.Size != 0 {
			t.Fatalf("Stat(empty): got %+v, %v; want size 0", info, err)
		}
		for _, r := range [][2]int64{{0, -1}, {0, 10}, {0, 0}} {
			if got := read(t, s, "empty", r[0], r[1]); len(got) != 0 {
				t.Errorf("Open(empty, %d, %d): got %d bytes, want 0", r[0], r[1], len(got))
			}
		}
		if _, err := s.Open(ctx, "empty", 1, -1); !errors.Is(err, ErrInvalidRange) {
			t.Errorf("Open(empty, 1, -1): got %v, want ErrInvalidRange", err)
		}
	}
}

// testRanges documents Open's ranges: a length past the end is cut at the end, offset
// equal to the size reads nothing, offset beyond it is ErrInvalidRange.
func testRanges(t *testing.T, _ backend, s Store) {
	obj := data(2, 1000)
	put(t, s, "r", obj)
	for _, c := range []struct {
		name           string
		offset, length int64
		want           []byte
	}{
		{"all", 0, -1, obj},
		{"all exactly", 0, 1000, obj},
		{"start", 0, 10, obj[:10]},
		{"middle", 100, 50, obj[100:150]},
		{"end", 990, 10, obj[990:]},
		{"past end cut", 990, 100, obj[990:]},
		{"from middle to end", 500, -1, obj[500:]},
		{"last byte", 999, -1, obj[999:]},
		{"nothing", 10, 0, nil},
		{"at end", 1000, -1, nil},
		{"at end with length", 1000, 5, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := read(t, s, "r", c.offset, c.length); !bytes.Equal(got, c.want) {
				t.Errorf("Open(r, %d, %d): got %d bytes, want %d", c.offset, c.length, len(got), len(c.want))
			}
		})
	}
	for _, c := range []struct {
		offset, length int64
		want           error
	}{
		{1001, -1, ErrInvalidRange},
		{5000, 10, ErrInvalidRange},
		{1001, 0, ErrInvalidRange},
		{-1, 5, nil},
		{0, -2, nil},
	} {
		r, err := s.Open(t.Context(), "r", c.offset, c.length)
		if err == nil {
			r.Close()
			t.Errorf("Open(r, %d, %d): no error", c.offset, c.length)
			continue
		}
		if c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("Open(r, %d, %d): got %v, want %v", c.offset, c.length, err, c.want)
		}
	}
}

func testMissing(t *testing.T, _ backend, s Store) {
	ctx := t.Context()
	for _, r := range [][2]int64{{0, -1}, {10, 5}, {0, 0}} {
		if _, err := s.Open(ctx, "nope/x", r[0], r[1]); !errors.Is(err, ErrNotFound) {
			t.Errorf("Open(missing, %d, %d): got %v, want ErrNotFound", r[0], r[1], err)
		}
	}
	if _, err := s.Stat(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat(missing): got %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "nope"); err != nil {
		t.Errorf("Delete(missing): %v", err)
	}
	if err := s.Delete(ctx, "nope/a/b"); err != nil {
		t.Errorf("Delete(missing): %v", err)
	}
	// A "directory" of other objects is not an object.
	put(t, s, "dir/obj", []byte("x"))
	if _, err := s.Stat(ctx, "dir"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat(dir): got %v, want ErrNotFound", err)
	}
	if _, err := s.Open(ctx, "dir", 0, -1); !errors.Is(err, ErrNotFound) {
		t.Errorf("Open(dir): got %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "dir"); err != nil {
		t.Errorf("Delete(dir): %v", err)
	}
	if got := read(t, s, "dir/obj", 0, -1); string(got) != "x" {
		t.Errorf("dir/obj after Delete(dir): got %q, want x", got)
	}
}

func testList(t *testing.T, _ backend, s Store) {
	for _, n := range []string{"a/1", "a/2", "a/b/3", "ab", "b/1", "c"} {
		put(t, s, n, []byte(n))
	}
	for _, c := range []struct {
		prefix string
		want   []string
	}{
		{"", []string{"a/1", "a/2", "a/b/3", "ab", "b/1", "c"}},
		{"a", []string{"a/1", "a/2", "a/b/3", "ab"}},
		{"a/", []string{"a/1", "a/2", "a/b/3"}},
		{"a/b", []string{"a/b/3"}},
		{"a/b/", []string{"a/b/3"}},
		{"a/1", []string{"a/1"}},
		{"b/", []string{"b/1"}},
		{"c", []string{"c"}},
		{"c/", nil},
		{"zzz", nil},
		{"zzz/y/", nil},
	} {
		if got := list(t, s, c.prefix); !slices.Equal(got, c.want) {
			t.Errorf("List(%q): got %q, want %q", c.prefix, got, c.want)
		}
	}
	// An error from fn stops the listing and comes back as is.
	stop := errors.New("stop")
	calls := 0
	err := s.List(t.Context(), "", func(Info) error { calls++; return stop })
	if err != stop || calls != 1 {
		t.Errorf("List with failing fn: got %v after %d calls, want %v after 1", err, calls, stop)
	}
}

func listAfter(t *testing.T, s Store, prefix, after string) []string {
	t.Helper()
	var names []string
	err := s.ListAfter(t.Context(), prefix, after, func(i Info) error {
		names = append(names, i.Name)
		return nil
	})
	if err != nil {
		t.Fatalf("ListAfter(%q, %q): %v", prefix, after, err)
	}
	slices.Sort(names)
	return names
}

// testListAfter checks that ListAfter lists what List lists, less every name up to
// after, so that names with a time of a fixed number of digits can be listed from a
// point in time.
func testListAfter(t *testing.T, _ backend, s Store) {
	names := []string{"a/1", "a/2", "a/b/3", "ab", "b/1", "c",
		"l/1699999999999-z.json", "l/1700000000000-x.json", "l/1700000000001-y.json"}
	for _, n := range names {
		put(t, s, n, []byte(n))
	}
	for _, c := range []struct {
		prefix, after string
		want          []string
	}{
		{"", "", names},
		{"", "a/2", []string{"a/b/3", "ab", "b/1", "c", "l/1699999999999-z.json", "l/1700000000000-x.json", "l/1700000000001-y.json"}},
		{"a/", "a/1", []string{"a/2", "a/b/3"}},
		{"a/", "a", []string{"a/1", "a/2", "a/b/3"}},
		{"a/", "a/b/3", nil},
		{"a", "a/b", []string{"a/b/3", "ab"}},
		{"", "b", []string{"b/1", "c", "l/1699999999999-z.json", "l/1700000000000-x.json", "l/1700000000001-y.json"}},
		{"b/", "a", []string{"b/1"}},
		{"l/", "l/1700000000000", []string{"l/1700000000000-x.json", "l/1700000000001-y.json"}},
		{"l/", "l/1700000000000-x.json", []string{"l/1700000000001-y.json"}},
		{"l/", "m", nil},
		{"", "zz", nil},
	} {
		if got := listAfter(t, s, c.prefix, c.after); !slices.Equal(got, c.want) {
			t.Errorf("ListAfter(%q, %q): got %q, want %q", c.prefix, c.after, got, c.want)
		}
	}
	stop := errors.New("stop")
	calls := 0
	err := s.ListAfter(t.Context(), "l/", "l/1", func(Info) error { calls++; return stop })
	if err != stop || calls != 1 {
		t.Errorf("ListAfter with failing fn: got %v after %d calls, want %v after 1", err, calls, stop)
	}
	if err := s.ListAfter(t.Context(), "../", "", func(Info) error { return nil }); !errors.Is(err, ErrInvalidName) {
		t.Errorf("ListAfter of an invalid prefix: got %v, want ErrInvalidName", err)
	}
}

var errBoom = errors.New("boom")

func testFailingReader(t *testing.T, b backend, s Store) {
	for _, c := range []struct {
		name   string
		size   int64
		failAt int64
	}{
		{"streamed", -1, 3 * mib},
		{"sized", 8 * mib, 3 * mib},
		{"streamed after a part", -1, 20 * mib},
		{"sized after a part", 40 * mib, 20 * mib},
		{"at once", -1, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			name := "fail/" + strings.ReplaceAll(c.name, " ", "-")
			n, err := s.Put(t.Context(), name, newFailingReader(c.failAt, errBoom), c.size)
			if err == nil {
				t.Fatalf("Put: no error (wrote %d)", n)
			}
			if !errors.Is(err, errBoom) {
				t.Logf("Put error does not wrap the reader's (allowed): %v", err)
			}
			assertNothingLeft(t, b, s, name)
		})
	}
}

func testCancel(t *testing.T, b backend, s Store) {
	t.Run("before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := s.Put(ctx, "c/before", bytes.NewReader(data(3, 100)), 100); !errors.Is(err, context.Canceled) {
			t.Errorf("Put: got %v, want context.Canceled", err)
		}
		assertNothingLeft(t, b, s, "c/before")
	})
	for _, c := range []struct {
		name     string
		size     int64
		cancelAt int64
	}{
		{"streamed", -1, 3 * mib},
		{"sized", 8 * mib, 3 * mib},
		{"streamed after a part", -1, 20 * mib},
	} {
		t.Run(c.name, func(t *testing.T) {
			name := "c/" + strings.ReplaceAll(c.name, " ", "-")
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			r := newFailingReader(c.cancelAt, nil)
			r.cancel = cancel
			if n, err := s.Put(ctx, name, r, c.size); err == nil {
				t.Fatalf("Put: no error (wrote %d)", n)
			}
			assertNothingLeft(t, b, s, name)
		})
	}
	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		pr, pw := io.Pipe()
		go func() { // a client that sends 1 MiB, then stalls past the deadline
			pw.Write(data(4, mib))
			<-ctx.Done()
			time.Sleep(10 * time.Millisecond)
			pw.Write([]byte("late"))
			pw.Close()
		}()
		if _, err := s.Put(ctx, "c/deadline", pr, -1); err == nil {
			t.Fatal("Put: no error")
		}
		pr.Close()
		assertNothingLeft(t, b, s, "c/deadline")
	})
}

func testSizeMismatch(t *testing.T, b backend, s Store) {
	for _, c := range []struct {
		name string
		size int64
		have int64
	}{
		{"short", 100, 50},
		{"long", 100, 200},
		{"empty but sized", 10, 0},
		{"zero but has data", 0, 1},
		{"short multipart", 24 * mib, 20 * mib},
		{"long single", 8 * mib, 8*mib + 1},
		{"long multipart", 20 * mib, 21 * mib},
	} {
		t.Run(c.name, func(t *testing.T) {
			name := "size/" + strings.ReplaceAll(c.name, " ", "-")
			_, err := s.Put(t.Context(), name, newFailingReader(c.have, nil), c.size)
			if !errors.Is(err, ErrSize) {
				t.Errorf("Put of %d bytes with size %d: got %v, want ErrSize", c.have, c.size, err)
			}
			assertNothingLeft(t, b, s, name)
		})
	}
}

// testOverwrite checks that readers see the old or the new object, never a mix, and
// that a failed overwrite keeps the old one.
func testOverwrite(t *testing.T, b backend, s Store) {
	v1, v2 := data(5, 3*mib), data(6, 2*mib+7)
	put(t, s, "o", v1)
	valid := map[string]bool{sum(v1): true, sum(v2): true}

	var stop atomic.Bool
	var reads atomic.Int64
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for !stop.Load() {
				r, err := s.Open(t.Context(), "o", 0, -1)
				if err != nil {
					t.Errorf("Open during overwrite: %v", err)
					return
				}
				got, err := io.ReadAll(r)
				r.Close()
				if err != nil {
					t.Errorf("read during overwrite: %v", err)
					return
				}
				if !valid[sum(got)] {
					t.Errorf("read during overwrite: got %d bytes that are neither version", len(got))
					return
				}
				reads.Add(1)
			}
		})
	}
	for i := range 6 {
		v := [][]byte{v2, v1}[i%2]
		put(t, s, "o", v)
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d reads during the overwrites", reads.Load())
	if got := read(t, s, "o", 0, -1); !bytes.Equal(got, v1) {
		t.Fatalf("after overwrites: got %d bytes, want v1", len(got))
	}

	if _, err := s.Put(t.Context(), "o", newFailingReader(mib, errBoom), -1); err == nil {
		t.Fatal("failing overwrite: no error")
	}
	if got := read(t, s, "o", 0, -1); !bytes.Equal(got, v1) {
		t.Errorf("after failed overwrite: got %d bytes, want the previous object", len(got))
	}
	if got := b.leftovers(t, s, "o"); len(got) != 0 {
		t.Errorf("failed overwrite left %q", got)
	}
	if got := list(t, s, ""); !slices.Equal(got, []string{"o"}) {
		t.Errorf("List: got %q, want [o]", got)
	}
}

var invalidNames = []string{
	"", "../x", "/abs", "a/../../b", "a\\b", "Upper", "a/B", "..", ".", "./a", "a/./b",
	"a//b", "a/", ".hidden", "a/.tmp", "-a", "_a", "a..b", "a b", "é", "a\x00b", "a\nb",
	strings.Repeat("a", 201), strings.Repeat("a/", 300) + "a",
}

func testInvalidNames(t *testing.T, b backend, s Store) {
	ctx := t.Context()
	for _, name := range invalidNames {
		if _, err := s.Put(ctx, name, strings.NewReader("x"), 1); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Put(%q): got %v, want ErrInvalidName", name, err)
		}
		if r, err := s.Open(ctx, name, 0, -1); !errors.Is(err, ErrInvalidName) {
			if err == nil {
				r.Close()
			}
			t.Errorf("Open(%q): got %v, want ErrInvalidName", name, err)
		}
		if _, err := s.Stat(ctx, name); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Stat(%q): got %v, want ErrInvalidName", name, err)
		}
		if err := s.Delete(ctx, name); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Delete(%q): got %v, want ErrInvalidName", name, err)
		}
		if name == "" || name == "a/" {
			continue // valid prefixes: everything, and what is in a/
		}
		if err := s.List(ctx, name, func(Info) error { return nil }); !errors.Is(err, ErrInvalidName) {
			t.Errorf("List(%q): got %v, want ErrInvalidName", name, err)
		}
	}
	if got := list(t, s, ""); len(got) != 0 {
		t.Errorf("List after refused Puts: got %q", got)
	}
	if got := b.leftovers(t, s, "x"); len(got) != 0 {
		t.Errorf("refused Puts left %q", got)
	}
}

func testStreamed(t *testing.T, b backend, s Store) {
	const size = 40 * mib
	h := sha256.New()
	n, err := s.Put(t.Context(), "big", io.TeeReader(stream(7, size), h), -1)
	if err != nil {
		t.Fatal(err)
	}
	if n != size {
		t.Errorf("Put wrote %d bytes, want %d", n, size)
	}
	want := hex.EncodeToString(h.Sum(nil))
	if info, err := s.Stat(t.Context(), "big"); err != nil || info.Size != size {
		t.Errorf("Stat: got %+v, %v; want size %d", info, err, size)
	}
	r, err := s.Open(t.Context(), "big", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	h.Reset()
	if _, err := io.Copy(h, r); err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		t.Errorf("SHA-256 after round trip: got %s, want %s", got, want)
	}
	// A range across part boundaries (8 MiB parts) of the streamed upload.
	whole := data(7, size)
	if got := read(t, s, "big", 16*mib-100, 16*mib+200); !bytes.Equal(got, whole[16*mib-100:32*mib+100]) {
		t.Errorf("range across parts: got %d bytes, not the expected ones", len(got))
	}
	if got := b.leftovers(t, s, "big"); len(got) != 0 {
		t.Errorf("Put left %q", got)
	}
}

func TestValidName(t *testing.T) {
	valid := []string{
		"a", "0", "abc", "a/b/c", "files/0a1b-c_d.e", "a.b", "a-", "a_", "9/z",
		strings.Repeat("a", 200), strings.Repeat("a", 200) + "/" + strings.Repeat("b", 200),
	}
	for _, n := range valid {
		if !ValidName(n) {
			t.Errorf("ValidName(%q) = false, want true", n)
		}
	}
	for _, n := range invalidNames {
		if ValidName(n) {
			t.Errorf("ValidName(%q) = true, want false", n)
		}
	}
	for _, c := range []struct {
		prefix string
		want   bool
	}{
		{"", true}, {"a", true}, {"a/", true}, {"files/", true}, {"a.", true}, {"a-", true},
		{"/", false}, {"a//", false}, {"../", false}, {"A", false}, {"a/.", false}, {".", false},
	} {
		if got := validPrefix(c.prefix); got != c.want {
			t.Errorf("validPrefix(%q) = %v, want %v", c.prefix, got, c.want)
		}
	}
}

// TestPutReader checks the size enforcement that both backends rely on.
func TestPutReader(t *testing.T) {
	for _, c := range []struct {
		name    string
		size    int64
		have    int
		wantErr error
	}{
		{"exact", 10, 10, nil},
		{"unknown", -1, 10, nil},
		{"zero", 0, 0, nil},
		{"short", 10, 9, ErrSize},
		{"long", 10, 11, ErrSize},
		{"zero but data", 0, 1, ErrSize},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := data(8, c.have)
			// iotest-like: one byte per Read, so every boundary is hit.
			pr := newPutReader(t.Context(), &oneByte{bytes.NewReader(src)}, c.size)
			got, err := io.ReadAll(pr)
			if !errors.Is(err, c.wantErr) {
				t.Fatalf("got %v, want %v", err, c.wantErr)
			}
			if c.wantErr == nil && (!bytes.Equal(got, src) || pr.n != int64(c.have)) {
				t.Errorf("got %d bytes (n %d), want %d", len(got), pr.n, c.have)
			}
			if c.name == "long" && len(got) >= int(c.size) {
				t.Errorf("long reader: handed over %d bytes, want fewer than %d (the last ones withheld)", len(got), c.size)
			}
		})
	}
}

type oneByte struct{ r io.Reader }

func (o *oneByte) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}

// Benchmarks: 64 MiB objects. On disk every Put fsyncs.

const benchSize = 64 * mib

func BenchmarkPut(b *testing.B) {
	for _, be := range backends() {
		b.Run(be.name, func(b *testing.B) {
			s := be.open(b)
			src := data(9, benchSize)
			b.SetBytes(benchSize)
			for b.Loop() {
				if _, err := s.Put(b.Context(), "bench/obj", bytes.NewReader(src), benchSize); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	for _, be := range backends() {
		b.Run(be.name, func(b *testing.B) {
			s := be.open(b)
			if _, err := s.Put(b.Context(), "bench/obj", stream(9, benchSize), benchSize); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(benchSize)
			for b.Loop() {
				r, err := s.Open(b.Context(), "bench/obj", 0, -1)
				if err != nil {
					b.Fatal(err)
				}
				if n, err := io.Copy(io.Discard, r); err != nil || n != benchSize {
					b.Fatalf("read %d bytes, %v", n, err)
				}
				r.Close()
			}
		})
	}
}
