// Package blob owns object storage: opaque objects (members' files, already encrypted) kept
// under random names on local disk (Disk) or in an S3-compatible bucket (S3). It sees
// ciphertext only: names are random and no metadata is stored with an object, so nothing
// here is personal data.
//
// Both backends give the same guarantees, checked by one contract test suite: a Put is
// atomic (the object appears complete or not at all, and a failed Put leaves nothing
// behind), names are validated by every method, and a missing object is ErrNotFound.
package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Store is object storage.
type Store interface {
	// Put stores the object atomically: it becomes visible under name only when all of r
	// is written; on any error nothing is left behind (no partial object, no temp file,
	// no unfinished multipart upload). size is the exact length, or -1 when unknown; a
	// reader that ends early or holds more than size bytes fails the Put.
	Put(ctx context.Context, name string, r io.Reader, size int64) (written int64, err error)
	// Open reads length bytes from offset (length -1: to the end). A range past the end
	// is cut at the end; offset equal to the size gives an empty reader and offset beyond
	// it ErrInvalidRange. A missing object is ErrNotFound. The reader must be closed and
	// is only good while ctx is.
	Open(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error)
	// Delete removes an object; a missing one is not an error.
	Delete(ctx context.Context, name string) error
	// List calls fn for every object whose name starts with prefix, in any order. An
	// error from fn stops the listing and is returned as is.
	List(ctx context.Context, prefix string, fn func(Info) error) error
	// ListAfter is List of only the names that sort after after (in byte order): a
	// listing that starts at a point known from the names, such as a time written
	// into them with a fixed number of digits, without reading what lies before it.
	// The order of the calls is unspecified, as for List; "" lists everything.
	ListAfter(ctx context.Context, prefix, after string, fn func(Info) error) error
	// Stat describes an object; a missing one is ErrNotFound.
	Stat(ctx context.Context, name string) (Info, error)
}

// Info describes a stored object.
type Info struct {
	Name     string
	Size     int64
	Modified time.Time
}

var (
	// ErrNotFound is returned by Open and Stat for a missing object.
	ErrNotFound = errors.New("blob: object not found")
	// ErrInvalidName is returned by every method for a name that ValidName refuses (and
	// by List for a prefix that no valid name can start with).
	ErrInvalidName = errors.New("blob: invalid object name")
	// ErrInvalidRange is returned by Open for an offset beyond the end of the object.
	ErrInvalidRange = errors.New("blob: offset beyond end of object")
	// ErrSize is returned by Put when the reader does not hold exactly size bytes.
	ErrSize = errors.New("blob: reader length differs from the size given")
)

const (
	maxSegment = 200
	// maxName keeps prefix+name well under S3's 1024-byte key limit.
	maxName = 512
)

// ValidName reports whether name is a valid object name: one or more "/"-separated
// segments, each [a-z0-9][a-z0-9._-]{0,199}, at most 512 bytes in all, without "..".
// Such a name cannot escape a directory, start with "/" or hold a backslash, and cannot
// collide with Disk's hidden temp area (segments never start with ".").
func ValidName(name string) bool {
	if name == "" || len(name) > maxName || strings.Contains(name, "..") {
		return false
	}
	for seg := range strings.SplitSeq(name, "/") {
		if !validSegment(seg) {
			return false
		}
	}
	return true
}

func validSegment(s string) bool {
	if len(s) == 0 || len(s) > maxSegment || !lowerAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !lowerAlnum(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func lowerAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
}

// validPrefix accepts "" (everything) and any string that begins some valid name.
func validPrefix(prefix string) bool {
	return prefix == "" || ValidName(prefix) || ValidName(prefix+"0")
}

func checkName(name string) error {
	if !ValidName(name) {
		return fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	return nil
}

func checkPrefix(prefix string) error {
	if !validPrefix(prefix) {
		return fmt.Errorf("%w: prefix %q", ErrInvalidName, prefix)
	}
	return nil
}

func checkRange(offset, length int64) error {
	if offset < 0 || length < -1 {
		return fmt.Errorf("blob: invalid range: offset %d, length %d", offset, length)
	}
	return nil
}

func checkSize(size int64) error {
	if size < -1 {
		return fmt.Errorf("blob: invalid size %d", size)
	}
	return nil
}

// putReader wraps the reader given to Put. It stops at the first error of ctx, counts
// the bytes, and enforces size: it fails instead of reporting EOF when the reader ends
// early, and it probes for one byte more before handing over the last ones so that a
// reader longer than size fails before the backend can commit the object. It hides any
// io.WriterTo or io.ReaderAt of the reader, so backends copy through their own bounded
// buffers and always read from the reader's current position.
type putReader struct {
	ctx  context.Context
	r    io.Reader
	size int64 // -1: unknown
	n    int64
	err  error // sticky
}

func newPutReader(ctx context.Context, r io.Reader, size int64) *putReader {
	return &putReader{ctx: ctx, r: r, size: size}
}

func (p *putReader) Read(b []byte) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	if err := p.ctx.Err(); err != nil {
		p.err = err
		return 0, err
	}
	if p.size < 0 {
		n, err := p.r.Read(b)
		p.n += int64(n)
		if err != nil {
			p.err = err
		}
		return n, err
	}
	left := p.size - p.n
	if left == 0 { // size 0: nothing to hand over, but the reader must be empty
		if err := p.probeEOF(); err != nil {
			return 0, err
		}
		p.err = io.EOF
		return 0, io.EOF
	}
	if int64(len(b)) > left {
		b = b[:left]
	}
	n, err := p.r.Read(b)
	p.n += int64(n)
	switch {
	case p.n == p.size:
		if err == nil || err == io.EOF {
			if perr := p.probeEOF(); perr != nil {
				return 0, perr // withhold the last bytes: the Put must not complete
			}
			p.err = io.EOF // reported by the next call
			return n, nil
		}
	case err == io.EOF:
		err = fmt.Errorf("%w: got %d bytes, want %d", ErrSize, p.n, p.size)
	}
	if err != nil {
		p.err = err
	}
	return n, err
}

// probeEOF checks that the reader holds nothing past size.
func (p *putReader) probeEOF() error {
	var one [1]byte
	n, err := io.ReadFull(p.r, one[:])
	switch {
	case n > 0:
		p.err = fmt.Errorf("%w: more than %d bytes", ErrSize, p.size)
	case err == io.EOF:
		return nil
	default:
		p.err = err
	}
	return p.err
}
