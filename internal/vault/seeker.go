package vault

import (
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
)

// NewReadSeeker returns a seekable reader of the plaintext of an object of plainSize
// bytes, for Range requests (http.ServeContent). open(off, n) must return the
// ciphertext bytes [off, off+n), or from off to the end when n is -1. The header is
// read at once; segments are read lazily from the one holding the position, each one
// authenticated (and the last one checked to be final and followed by nothing) before
// any of its bytes are returned. Seeking never reads. plainSize is trusted: it comes
// from the caller's records, and a wrong one makes reads fail with ErrTampered.
func (k *Key) NewReadSeeker(plainSize int64, open func(off, n int64) (io.ReadCloser, error)) (io.ReadSeekCloser, error) {
	if plainSize < 0 {
		return nil, fmt.Errorf("vault: read: negative size %d", plainSize)
	}
	rc, err := open(0, int64(HeaderSize))
	if err != nil {
		return nil, fmt.Errorf("vault: read header: %w", err)
	}
	var hdr [HeaderSize]byte
	_, err = io.ReadFull(rc, hdr[:])
	rc.Close()
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: truncated header", ErrTampered)
		}
		return nil, fmt.Errorf("vault: read header: %w", err)
	}
	aead, err := k.readHeader(hdr[:])
	if err != nil {
		return nil, err
	}
	return &readSeeker{
		aead:   aead,
		open:   open,
		size:   plainSize,
		segs:   segments(plainSize),
		buf:    make([]byte, encSegmentSize),
		loaded: -1,
	}, nil
}

type readSeeker struct {
	aead   cipher.AEAD
	open   func(off, n int64) (io.ReadCloser, error)
	size   int64
	segs   int64
	pos    int64
	buf    []byte
	plain  []byte // plaintext of segment loaded, within buf
	loaded int64  // the segment in plain, -1 for none
	rc     io.ReadCloser
	rcSeg  int64 // the segment rc will read next
	nonce  [12]byte
	closed bool
}

func (s *readSeeker) Read(p []byte) (int, error) {
	if s.closed {
		return 0, errors.New("vault: read from a closed reader")
	}
	if s.pos >= s.size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	i := s.pos / SegmentSize
	if s.loaded != i {
		if err := s.load(i); err != nil {
			return 0, err
		}
	}
	n := copy(p, s.plain[s.pos-i*SegmentSize:])
	s.pos += int64(n)
	return n, nil
}

// load reads and opens segment i, reusing the open ciphertext reader when it is
// already there (sequential reads).
func (s *readSeeker) load(i int64) error {
	s.loaded = -1
	if s.rc == nil || s.rcSeg != i {
		s.drop()
		rc, err := s.open(int64(HeaderSize)+i*encSegmentSize, -1)
		if err != nil {
			return fmt.Errorf("vault: read segment %d: %w", i, err)
		}
		s.rc, s.rcSeg = rc, i
	}
	last := i == s.segs-1
	n := encSegmentSize
	if last {
		n = int(s.size-i*SegmentSize) + TagSize
	}
	if _, err := io.ReadFull(s.rc, s.buf[:n]); err != nil {
		s.drop()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: truncated at segment %d", ErrTampered, i)
		}
		return fmt.Errorf("vault: read segment %d: %w", i, err)
	}
	s.rcSeg++
	setNonce(&s.nonce, uint64(i), last)
	plain, err := s.aead.Open(s.buf[:0], s.nonce[:], s.buf[:n], nil)
	if err != nil {
		s.drop()
		return fmt.Errorf("%w: segment %d", ErrTampered, i)
	}
	if last {
		var one [1]byte
		m, err := io.ReadFull(s.rc, one[:])
		s.drop()
		if m > 0 {
			return fmt.Errorf("%w: data after the final segment", ErrTampered)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("vault: read segment %d: %w", i, err)
		}
	}
	s.plain, s.loaded = plain, i
	return nil
}

// drop closes the ciphertext reader, if any.
func (s *readSeeker) drop() {
	if s.rc != nil {
		s.rc.Close()
		s.rc = nil
	}
}

// Seek moves the position; it reads nothing.
func (s *readSeeker) Seek(offset int64, whence int) (int64, error) {
	var pos int64
	switch whence {
	case io.SeekStart:
		pos = offset
	case io.SeekCurrent:
		pos = s.pos + offset
	case io.SeekEnd:
		pos = s.size + offset
	default:
		return s.pos, fmt.Errorf("vault: seek: bad whence %d", whence)
	}
	if pos < 0 {
		return s.pos, errors.New("vault: seek: negative position")
	}
	s.pos = pos
	return pos, nil
}

// Close releases the ciphertext reader.
func (s *readSeeker) Close() error {
	s.closed = true
	s.plain = nil
	s.loaded = -1
	if s.rc != nil {
		err := s.rc.Close()
		s.rc = nil
		return err
	}
	return nil
}
