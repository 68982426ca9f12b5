package vault

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/iotest"
)

// testKey returns a random data key for subject.
func testKey(t testing.TB, subject string) *Key {
	t.Helper()
	k := &Key{subject: subject}
	rand.Read(k.data[:])
	return k
}

// pseudo returns n deterministic pseudo-random bytes.
func pseudo(n int, seed uint64) []byte {
	b := make([]byte, n)
	var s [32]byte
	s[0] = byte(seed)
	mrand.NewChaCha8(s).Read(b)
	return b
}

func encrypt(t testing.TB, k *Key, plain []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := k.Encrypt(&buf)
	if err != nil {
		t.Fatalf("Encrypt: %v", err)
	}
	if _, err := w.Write(plain); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return buf.Bytes()
}

func decrypt(k *Key, ct []byte) ([]byte, error) {
	r, err := k.Decrypt(bytes.NewReader(ct))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

func TestRoundTrip(t *testing.T) {
	k := testKey(t, "alice")
	sizes := []int{0, 1, 17, SegmentSize - 1, SegmentSize, SegmentSize + 1, 2 * SegmentSize, 3*SegmentSize + 17}
	// How the plaintext is handed to the writer.
	writers := map[string]func(w io.Writer, p []byte) error{
		"one write": func(w io.Writer, p []byte) error { _, err := w.Write(p); return err },
		"small writes": func(w io.Writer, p []byte) error {
			for len(p) > 0 {
				n := min(len(p), 1000)
				if _, err := w.Write(p[:n]); err != nil {
					return err
				}
				p = p[n:]
			}
			return nil
		},
		// A reader without WriteTo makes io.Copy use the writer's ReadFrom.
		"ReadFrom": func(w io.Writer, p []byte) error {
			_, err := io.Copy(w, iotest.HalfReader(bytes.NewReader(p)))
			return err
		},
	}
	// How the plaintext is read back.
	readers := map[string]func(k *Key, ct []byte) ([]byte, error){
		"ReadAll": decrypt,
		"WriteTo": func(k *Key, ct []byte) ([]byte, error) {
			r, err := k.Decrypt(bytes.NewReader(ct))
			if err != nil {
				return nil, err
			}
			var out bytes.Buffer
			_, err = io.Copy(&out, r)
			return out.Bytes(), err
		},
		"short reads": func(k *Key, ct []byte) ([]byte, error) {
			r, err := k.Decrypt(iotest.HalfReader(bytes.NewReader(ct)))
			if err != nil {
				return nil, err
			}
			return io.ReadAll(iotest.OneByteReader(io.LimitReader(r, 1<<62)))
		},
	}
	for _, size := range sizes {
		plain := pseudo(size, uint64(size))
		for wname, write := range writers {
			t.Run(fmt.Sprintf("%d/%s", size, wname), func(t *testing.T) {
				var buf bytes.Buffer
				w, err := k.Encrypt(&buf)
				if err != nil {
					t.Fatal(err)
				}
				if err := write(w, plain); err != nil {
					t.Fatalf("write: %v", err)
				}
				if err := w.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
				ct := buf.Bytes()
				if got, want := int64(len(ct)), CiphertextSize(int64(size)); got != want {
					t.Fatalf("ciphertext is %d bytes, CiphertextSize says %d", got, want)
				}
				for rname, read := range readers {
					if rname == "short reads" && size > 2*SegmentSize {
						continue // slow, and covered by the smaller sizes
					}
					got, err := read(k, ct)
					if err != nil {
						t.Fatalf("%s: %v", rname, err)
					}
					if !bytes.Equal(got, plain) {
						t.Fatalf("%s: got %d bytes, want the %d bytes written", rname, len(got), len(plain))
					}
				}
			})
		}
	}
}

func TestCiphertextSize(t *testing.T) {
	tests := []struct {
		plain, want int64
	}{
		{0, 36 + 16},
		{1, 36 + 1 + 16},
		{SegmentSize, 36 + SegmentSize + 16},
		{SegmentSize + 1, 36 + SegmentSize + 1 + 2*16},
		{3 * SegmentSize, 36 + 3*SegmentSize + 3*16},
	}
	for _, tt := range tests {
		if got := CiphertextSize(tt.plain); got != tt.want {
			t.Errorf("CiphertextSize(%d) = %d, want %d", tt.plain, got, tt.want)
		}
	}
}

func TestLargeStream(t *testing.T) {
	if testing.Short() {
		t.Skip("50 MiB")
	}
	const size = 50 << 20
	k := testKey(t, "alice")
	var seed [32]byte
	src := io.LimitReader(mrand.NewChaCha8(seed), size)
	want := sha256.New()
	var ct bytes.Buffer
	ct.Grow(int(CiphertextSize(size)))
	w, err := k.Encrypt(&ct)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(w, io.TeeReader(src, want)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := int64(ct.Len()), CiphertextSize(size); got != want {
		t.Fatalf("ciphertext is %d bytes, CiphertextSize says %d", got, want)
	}
	r, err := k.Decrypt(&ct)
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	n, err := io.Copy(got, r)
	if err != nil {
		t.Fatal(err)
	}
	if n != size || !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Fatalf("decrypted %d bytes with SHA-256 %x, want %d bytes with %x", n, got.Sum(nil), size, want.Sum(nil))
	}
}

func TestTampering(t *testing.T) {
	k := testKey(t, "alice")
	seg := encSegmentSize
	h := HeaderSize
	plain := pseudo(3*SegmentSize+17, 1) // four segments, the last of 17 bytes
	exact := pseudo(2*SegmentSize, 2)    // two full segments
	flip := func(i int) func(c []byte) []byte {
		return func(c []byte) []byte {
			if i < 0 {
				i += len(c)
			}
			c[i] ^= 0x01
			return c
		}
	}
	tests := []struct {
		name   string
		plain  []byte
		mutate func(c []byte) []byte
		key    *Key
	}{
		{"magic", plain, flip(0), nil},
		{"salt", plain, flip(20), nil},
		{"first segment", plain, flip(h + 100), nil},
		{"first segment's tag", plain, flip(h + seg - 1), nil},
		{"middle segment", plain, flip(h + 2*seg + 5), nil},
		{"final segment", plain, flip(-20), nil},
		{"final tag", plain, flip(-1), nil},
		{"empty object's tag", nil, flip(-1), nil},
		{"swap segments", plain, func(c []byte) []byte {
			s0 := bytes.Clone(c[h : h+seg])
			copy(c[h:h+seg], c[h+seg:h+2*seg])
			copy(c[h+seg:h+2*seg], s0)
			return c
		}, nil},
		{"segment repeated", plain, func(c []byte) []byte {
			copy(c[h+seg:h+2*seg], c[h:h+seg])
			return c
		}, nil},
		{"final segment truncated", plain, func(c []byte) []byte { return c[:len(c)-5] }, nil},
		{"final segment dropped", plain, func(c []byte) []byte { return c[:h+3*seg] }, nil},
		{"final full segment dropped", exact, func(c []byte) []byte { return c[:h+seg] }, nil},
		{"final full segment truncated", exact, func(c []byte) []byte { return c[:len(c)-1] }, nil},
		{"all segments dropped", plain, func(c []byte) []byte { return c[:h] }, nil},
		{"header truncated", plain, func(c []byte) []byte { return c[:h-1] }, nil},
		{"nothing", plain, func(c []byte) []byte { return nil }, nil},
		{"byte appended", plain, func(c []byte) []byte { return append(c, 0) }, nil},
		{"byte appended to exact", exact, func(c []byte) []byte { return append(c, 0) }, nil},
		{"segment appended", plain, func(c []byte) []byte { return append(c, c[h:h+seg]...) }, nil},
		{"another subject's key", plain, func(c []byte) []byte { return c }, testKey(t, "bob")},
		{"another subject's key, empty", nil, func(c []byte) []byte { return c }, testKey(t, "bob")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct := tt.mutate(encrypt(t, k, tt.plain))
			key := k
			if tt.key != nil {
				key = tt.key
			}
			got, err := decrypt(key, ct)
			if !errors.Is(err, ErrTampered) {
				t.Fatalf("decrypt: got %d bytes and error %v, want %v", len(got), err, ErrTampered)
			}
		})
	}
}

func TestEncryptionsDiffer(t *testing.T) {
	k := testKey(t, "alice")
	plain := pseudo(1000, 3)
	a, b := encrypt(t, k, plain), encrypt(t, k, plain)
	if bytes.Equal(a[:HeaderSize], b[:HeaderSize]) {
		t.Fatal("two encryptions have the same header (salt)")
	}
	if bytes.Equal(a[HeaderSize:], b[HeaderSize:]) {
		t.Fatal("two encryptions of the same plaintext have the same segments")
	}
}

func TestWriterErrors(t *testing.T) {
	k := testKey(t, "alice")
	w, err := k.Encrypt(io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: got %v, want nil", err)
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("Write after Close: got nil error")
	}
	// A failing destination fails the writer, for good.
	fail := errors.New("disk full")
	w, err = k.Encrypt(&failAfter{n: HeaderSize + 10, err: fail})
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.Write(make([]byte, 3*SegmentSize))
	if !errors.Is(err, fail) {
		t.Fatalf("Write to a failing destination: got %v, want %v", err, fail)
	}
	if err := w.Close(); !errors.Is(err, fail) {
		t.Fatalf("Close after a failed write: got %v, want %v", err, fail)
	}
	// ReadFrom passes the source's error through, unwrapped.
	w, _ = k.Encrypt(io.Discard)
	srcErr := errors.New("over the limit")
	if _, err := io.Copy(w, iotest.ErrReader(srcErr)); err != srcErr {
		t.Fatalf("io.Copy from a failing source: got %v, want %v", err, srcErr)
	}
}

type failAfter struct {
	n   int
	err error
}

func (f *failAfter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		return 0, f.err
	}
	f.n -= len(p)
	return len(p), nil
}

// objectStore serves a ciphertext by ranges and counts what is opened.
type objectStore struct {
	ct     []byte
	opens  []string // "off:n" of every open
	open_  int      // readers not yet closed
	broken error    // returned by open when set
}

func (o *objectStore) open(off, n int64) (io.ReadCloser, error) {
	o.opens = append(o.opens, fmt.Sprintf("%d:%d", off, n))
	if o.broken != nil {
		return nil, o.broken
	}
	if off > int64(len(o.ct)) {
		off = int64(len(o.ct))
	}
	end := int64(len(o.ct))
	if n >= 0 && off+n < end {
		end = off + n
	}
	o.open_++
	return &countedCloser{Reader: bytes.NewReader(o.ct[off:end]), o: o}, nil
}

type countedCloser struct {
	io.Reader
	o      *objectStore
	closed bool
}

func (c *countedCloser) Close() error {
	if !c.closed {
		c.closed = true
		c.o.open_--
	}
	return nil
}

func TestReadSeeker(t *testing.T) {
	k := testKey(t, "alice")
	const size = 4*SegmentSize + 1234 // five segments
	plain := pseudo(size, 4)
	ct := encrypt(t, k, plain)

	t.Run("random ranges", func(t *testing.T) {
		o := &objectStore{ct: ct}
		rs, err := k.NewReadSeeker(size, o.open)
		if err != nil {
			t.Fatal(err)
		}
		rng := mrand.New(mrand.NewPCG(1, 2))
		buf := make([]byte, 3*SegmentSize)
		for i := range 300 {
			off := rng.Int64N(size + 1)
			n := min(rng.Int64N(int64(len(buf))+1), size-off)
			var pos int64
			switch i % 3 {
			case 0:
				pos, err = rs.Seek(off, io.SeekStart)
			case 1:
				cur, _ := rs.Seek(0, io.SeekCurrent)
				pos, err = rs.Seek(off-cur, io.SeekCurrent)
			case 2:
				pos, err = rs.Seek(off-size, io.SeekEnd)
			}
			if err != nil || pos != off {
				t.Fatalf("Seek to %d: got %d, %v", off, pos, err)
			}
			if _, err := io.ReadFull(rs, buf[:n]); err != nil {
				t.Fatalf("read [%d, %d): %v", off, off+n, err)
			}
			if !bytes.Equal(buf[:n], plain[off:off+n]) {
				t.Fatalf("read [%d, %d): plaintext differs", off, off+n)
			}
		}
		if err := rs.Close(); err != nil {
			t.Fatal(err)
		}
		if o.open_ != 0 {
			t.Fatalf("%d ciphertext readers left open after Close", o.open_)
		}
	})

	t.Run("sequential read opens once", func(t *testing.T) {
		o := &objectStore{ct: ct}
		rs, err := k.NewReadSeeker(size, o.open)
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		got, err := io.ReadAll(rs)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, plain) {
			t.Fatal("plaintext differs")
		}
		want := []string{fmt.Sprintf("0:%d", HeaderSize), fmt.Sprintf("%d:-1", HeaderSize)}
		if fmt.Sprint(o.opens) != fmt.Sprint(want) {
			t.Fatalf("opens: got %v, want %v", o.opens, want)
		}
	})

	t.Run("seek to end reads nothing", func(t *testing.T) {
		o := &objectStore{ct: ct}
		rs, err := k.NewReadSeeker(size, o.open)
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		got, err := rs.Seek(0, io.SeekEnd)
		if err != nil || got != size {
			t.Fatalf("Seek(0, io.SeekEnd): got %d, %v, want %d", got, err, size)
		}
		if want := []string{fmt.Sprintf("0:%d", HeaderSize)}; fmt.Sprint(o.opens) != fmt.Sprint(want) {
			t.Fatalf("opens: got %v, want only the header %v", o.opens, want)
		}
		if n, err := rs.Read(make([]byte, 10)); n != 0 || err != io.EOF {
			t.Fatalf("Read at the end: got %d, %v, want 0, EOF", n, err)
		}
	})

	t.Run("seek to a segment opens there", func(t *testing.T) {
		o := &objectStore{ct: ct}
		rs, _ := k.NewReadSeeker(size, o.open)
		defer rs.Close()
		rs.Seek(3*SegmentSize+10, io.SeekStart)
		buf := make([]byte, 5)
		if _, err := io.ReadFull(rs, buf); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("%d:-1", HeaderSize+3*encSegmentSize)
		if got := o.opens[len(o.opens)-1]; got != want {
			t.Fatalf("opened %s, want %s", got, want)
		}
	})

	t.Run("http range", func(t *testing.T) {
		o := &objectStore{ct: ct}
		rs, _ := k.NewReadSeeker(size, o.open)
		defer rs.Close()
		req := httptest.NewRequest("GET", "/f", nil)
		req.Header.Set("Range", "bytes=70000-200009")
		rec := httptest.NewRecorder()
		http.ServeContent(rec, req, "f.bin", testTime, rs)
		if rec.Code != http.StatusPartialContent {
			t.Fatalf("status %d, want 206", rec.Code)
		}
		if got := rec.Body.Bytes(); !bytes.Equal(got, plain[70000:200010]) {
			t.Fatalf("body: %d bytes, not the range asked for", len(got))
		}
	})

	t.Run("empty object", func(t *testing.T) {
		ct := encrypt(t, k, nil)
		o := &objectStore{ct: ct}
		rs, err := k.NewReadSeeker(0, o.open)
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		got, err := io.ReadAll(rs)
		if err != nil || len(got) != 0 {
			t.Fatalf("ReadAll: got %d bytes, %v", len(got), err)
		}
	})

	t.Run("open error", func(t *testing.T) {
		o := &objectStore{ct: ct}
		rs, _ := k.NewReadSeeker(size, o.open)
		defer rs.Close()
		o.broken = errors.New("storage down")
		_, err := rs.Read(make([]byte, 10))
		if !errors.Is(err, o.broken) || errors.Is(err, ErrTampered) {
			t.Fatalf("Read: got %v, want %v (and not tampered)", err, o.broken)
		}
	})

	bad := func(mutate func(c []byte) []byte) []byte { return mutate(bytes.Clone(ct)) }
	tests := []struct {
		name     string
		ct       []byte
		size     int64
		off, n   int64
		wantFail bool
	}{
		{"range before a flipped segment", bad(func(c []byte) []byte { c[HeaderSize+2*encSegmentSize+9] ^= 1; return c }), size, 10, 2*SegmentSize - 10, false},
		{"range over a flipped segment", bad(func(c []byte) []byte { c[HeaderSize+2*encSegmentSize+9] ^= 1; return c }), size, SegmentSize, 2 * SegmentSize, true},
		{"range inside a flipped segment", bad(func(c []byte) []byte { c[HeaderSize+2*encSegmentSize+9] ^= 1; return c }), size, 2*SegmentSize + 100, 10, true},
		{"swapped segments", bad(func(c []byte) []byte {
			s := bytes.Clone(c[HeaderSize : HeaderSize+encSegmentSize])
			copy(c[HeaderSize:], c[HeaderSize+encSegmentSize:HeaderSize+2*encSegmentSize])
			copy(c[HeaderSize+encSegmentSize:], s)
			return c
		}), size, 0, 10, true},
		{"truncated final segment", ct[:len(ct)-1], size, size - 10, 10, true},
		{"byte after the final segment", append(bytes.Clone(ct), 0), size, size - 10, 10, true},
		{"size too small", ct, size - 1, size - 11, 10, true},
		{"size too large", ct, size + 1, size - 10, 10, true},
		{"full segment claimed final", ct, 4 * SegmentSize, 4*SegmentSize - 10, 10, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := &objectStore{ct: tt.ct}
			rs, err := k.NewReadSeeker(tt.size, o.open)
			if err != nil {
				t.Fatal(err)
			}
			defer rs.Close()
			rs.Seek(tt.off, io.SeekStart)
			buf := make([]byte, tt.n)
			_, err = io.ReadFull(rs, buf)
			switch {
			case tt.wantFail && !errors.Is(err, ErrTampered):
				t.Fatalf("read [%d, %d): got %v, want %v", tt.off, tt.off+tt.n, err, ErrTampered)
			case !tt.wantFail && err != nil:
				t.Fatalf("read [%d, %d): %v", tt.off, tt.off+tt.n, err)
			case !tt.wantFail && !bytes.Equal(buf, plain[tt.off:tt.off+tt.n]):
				t.Fatal("plaintext differs")
			}
		})
	}

	t.Run("bad header", func(t *testing.T) {
		for name, c := range map[string][]byte{
			"magic":     bad(func(c []byte) []byte { c[1] ^= 1; return c }),
			"truncated": ct[:HeaderSize-1],
		} {
			o := &objectStore{ct: c}
			if _, err := k.NewReadSeeker(size, o.open); !errors.Is(err, ErrTampered) {
				t.Errorf("%s: NewReadSeeker: got %v, want %v", name, err, ErrTampered)
			}
		}
		o := &objectStore{ct: ct}
		rs, err := testKey(t, "bob").NewReadSeeker(size, o.open)
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		if _, err := rs.Read(make([]byte, 1)); !errors.Is(err, ErrTampered) {
			t.Errorf("another subject's key: got %v, want %v", err, ErrTampered)
		}
	})
}

func BenchmarkEncrypt(b *testing.B) {
	k := testKey(b, "alice")
	chunk := pseudo(1<<20, 5)
	w, err := k.Encrypt(io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := w.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkDecrypt(b *testing.B) {
	k := testKey(b, "alice")
	const size = 16 << 20
	ct := encrypt(b, k, pseudo(size, 6))
	buf := make([]byte, 1<<20)
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		r, err := k.Decrypt(bytes.NewReader(ct))
		if err != nil {
			b.Fatal(err)
		}
		for {
			_, err := io.ReadFull(r, buf)
			if err == io.EOF {
				break
			}
			if err != nil && err != io.ErrUnexpectedEOF {
				b.Fatal(err)
			}
		}
	}
}
