package vault

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The stream format (STREAM, as in age and Tink, with AES-256-GCM):
//
//	header:   "STW1" | salt (32 random bytes)                       HeaderSize = 36
//	segments: AES-256-GCM(objectKey, nonce_i, plaintext_i)           SegmentSize+16 each,
//	          the last one shorter: its plaintext is 1..SegmentSize bytes, or 0 bytes
//	          only when the whole object is empty.
//
// objectKey = HKDF-SHA256(dataKey, salt, "steward file v1"), so a data key never
// reuses a nonce across objects. nonce_i is 11 bytes of big-endian segment counter
// and one byte that is 0x01 on the final segment and 0x00 on every other, so that
// segments cannot be reordered, dropped or appended, and the stream cannot be
// truncated at a segment boundary. The header is not sealed itself: a changed salt
// derives another key, and the magic is compared exactly.
const (
	// SegmentSize is the plaintext size of every segment but the last.
	SegmentSize = 64 << 10
	// TagSize is the authentication tag added to every segment.
	TagSize = 16
	// HeaderSize is the size of the header before the first segment.
	HeaderSize = len(magic) + saltSize

	saltSize       = 32
	encSegmentSize = SegmentSize + TagSize
	objectInfo     = "steward file v1"
)

const magic = "STW1"

// ErrTampered is returned (wrapped) when a ciphertext fails authentication: it was
// changed, reordered, truncated or extended, or it is under another key.
var ErrTampered = errors.New("vault: ciphertext is damaged, tampered with, or under another key")

// segments returns how many segments hold plainSize bytes: at least one, the last one
// full when plainSize is a multiple of SegmentSize.
func segments(plainSize int64) int64 {
	if plainSize <= 0 {
		return 1
	}
	return (plainSize + SegmentSize - 1) / SegmentSize
}

// CiphertextSize returns the exact size of the ciphertext of plainSize bytes:
//
//	HeaderSize + plainSize + TagSize*max(1, ceil(plainSize/SegmentSize))
func CiphertextSize(plainSize int64) int64 {
	return int64(HeaderSize) + plainSize + TagSize*segments(plainSize)
}

// objectAEAD derives the key of one object from the data key and the object's salt.
func (k *Key) objectAEAD(salt []byte) (cipher.AEAD, error) {
	ok, err := hkdf.Key(sha256.New, k.data[:], salt, objectInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("vault: derive: %w", err)
	}
	block, err := aes.NewCipher(ok)
	if err != nil {
		return nil, fmt.Errorf("vault: derive: %w", err)
	}
	return cipher.NewGCM(block)
}

// setNonce writes the nonce of segment i into n.
func setNonce(n *[12]byte, i uint64, last bool) {
	n[0], n[1], n[2] = 0, 0, 0
	binary.BigEndian.PutUint64(n[3:11], i)
	n[11] = 0
	if last {
		n[11] = 1
	}
}

// Encrypt returns a writer that encrypts what is written to it into dst. Close writes
// the final segment and must be called; it does not close dst.
func (k *Key) Encrypt(dst io.Writer) (io.WriteCloser, error) {
	var hdr [HeaderSize]byte
	copy(hdr[:], magic)
	salt := hdr[len(magic):]
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("vault: encrypt: %w", err)
	}
	aead, err := k.objectAEAD(salt)
	if err != nil {
		return nil, err
	}
	if _, err := dst.Write(hdr[:]); err != nil {
		return nil, fmt.Errorf("vault: encrypt: %w", err)
	}
	return &encWriter{dst: dst, aead: aead, buf: make([]byte, encSegmentSize)}, nil
}

// encWriter buffers one segment of plaintext and seals it in place. A full segment is
// sealed only when more data arrives, because only then is it known not to be last.
type encWriter struct {
	dst   io.Writer
	aead  cipher.AEAD
	buf   []byte // encSegmentSize: the plaintext, then room for the tag
	n     int    // plaintext bytes in buf
	ctr   uint64
	nonce [12]byte
	err   error // sticky
}

var errClosed = errors.New("vault: write to a closed stream")

func (w *encWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	total := 0
	for len(p) > 0 {
		if w.n == SegmentSize {
			if err := w.seal(false); err != nil {
				return total, err
			}
		}
		c := copy(w.buf[w.n:SegmentSize], p)
		w.n += c
		total += c
		p = p[c:]
	}
	return total, nil
}

// ReadFrom reads r straight into the segment buffer, sparing io.Copy a copy. It
// returns r's error as it is (io.EOF excepted).
func (w *encWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.err != nil {
		return 0, w.err
	}
	var total int64
	for {
		if w.n == SegmentSize {
			// Full: find out whether anything follows before sealing.
			var one [1]byte
			m, err := r.Read(one[:])
			if m == 1 {
				if serr := w.seal(false); serr != nil {
					return total, serr
				}
				w.buf[0] = one[0]
				w.n = 1
				total++
			}
			if err == io.EOF {
				return total, nil
			}
			if err != nil {
				return total, err
			}
			continue
		}
		m, err := r.Read(w.buf[w.n:SegmentSize])
		w.n += m
		total += int64(m)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

func (w *encWriter) seal(last bool) error {
	setNonce(&w.nonce, w.ctr, last)
	if w.ctr == 1<<64-1 {
		w.err = errors.New("vault: encrypt: too many segments")
		return w.err
	}
	w.ctr++
	ct := w.aead.Seal(w.buf[:0], w.nonce[:], w.buf[:w.n], nil)
	w.n = 0
	if _, err := w.dst.Write(ct); err != nil {
		w.err = fmt.Errorf("vault: encrypt: %w", err)
		return w.err
	}
	return nil
}

// Close seals and writes the final segment.
func (w *encWriter) Close() error {
	if w.err != nil {
		if w.err == errClosed {
			return nil
		}
		return w.err
	}
	if err := w.seal(true); err != nil {
		return err
	}
	w.err = errClosed
	return nil
}

// readHeader checks the header in hdr and returns the object's AEAD.
func (k *Key) readHeader(hdr []byte) (cipher.AEAD, error) {
	if string(hdr[:len(magic)]) != magic {
		return nil, fmt.Errorf("%w: not a steward ciphertext (bad magic)", ErrTampered)
	}
	return k.objectAEAD(hdr[len(magic):HeaderSize])
}

// Decrypt reads the header from src and returns a reader of the plaintext. Every
// segment is authenticated before any of its bytes are returned; a read fails with
// ErrTampered on any change, reordering, truncation or trailing data. Plaintext
// already returned before such an error must be discarded by the caller.
func (k *Key) Decrypt(src io.Reader) (io.Reader, error) {
	var hdr [HeaderSize]byte
	if _, err := io.ReadFull(src, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: truncated header", ErrTampered)
		}
		return nil, fmt.Errorf("vault: decrypt: %w", err)
	}
	aead, err := k.readHeader(hdr[:])
	if err != nil {
		return nil, err
	}
	return &decReader{src: src, aead: aead, buf: make([]byte, encSegmentSize+1)}, nil
}

// decReader reads one segment plus one byte, to learn whether the segment is the last
// without a second buffer; the extra byte starts the next segment.
type decReader struct {
	src   io.Reader
	aead  cipher.AEAD
	buf   []byte // encSegmentSize+1
	carry bool   // buf[encSegmentSize] is the first byte of the next segment
	plain []byte // unread plaintext, within buf
	ctr   uint64
	done  bool  // the final segment has been read
	err   error // sticky
	nonce [12]byte
}

func (r *decReader) Read(p []byte) (int, error) {
	for len(r.plain) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.done {
			return 0, io.EOF
		}
		r.err = r.next()
	}
	n := copy(p, r.plain)
	r.plain = r.plain[n:]
	return n, nil
}

// WriteTo writes the plaintext to w straight from the segment buffer.
func (r *decReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if len(r.plain) > 0 {
			n, err := w.Write(r.plain)
			total += int64(n)
			r.plain = r.plain[n:]
			if err != nil {
				return total, err
			}
			continue
		}
		if r.err != nil {
			return total, r.err
		}
		if r.done {
			return total, nil
		}
		r.err = r.next()
	}
}

// next reads and opens the next segment into r.plain.
func (r *decReader) next() error {
	start := 0
	if r.carry {
		r.buf[0] = r.buf[encSegmentSize]
		start = 1
		r.carry = false
	}
	m, err := io.ReadFull(r.src, r.buf[start:])
	total := start + m
	last := false
	switch {
	case err == nil:
		r.carry = true
		total = encSegmentSize
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		last = true
	default:
		return fmt.Errorf("vault: decrypt: %w", err)
	}
	if total < TagSize {
		return fmt.Errorf("%w: truncated at segment %d", ErrTampered, r.ctr)
	}
	if last && total == TagSize && r.ctr > 0 {
		return fmt.Errorf("%w: empty final segment", ErrTampered)
	}
	setNonce(&r.nonce, r.ctr, last)
	plain, err := r.aead.Open(r.buf[:0], r.nonce[:], r.buf[:total], nil)
	if err != nil {
		return fmt.Errorf("%w: segment %d", ErrTampered, r.ctr)
	}
	r.ctr++
	r.plain = plain
	r.done = last
	return nil
}
