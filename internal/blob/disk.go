package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
)

// tmpDir is Disk's temp area inside its directory, on the same file system so that a
// rename publishes an object atomically. Valid names never start with ".", so no object
// can collide with it and List never sees it.
const tmpDir = ".tmp"

// copyBufSize is the chunk Disk copies with.
const copyBufSize = 256 << 10

// Disk stores objects as files: object "a/b" is <dir>/a/b. Files are 0600, directories
// 0700. An object name cannot also be a directory of another one (with "a/b" stored, a
// Put of "a" fails, and the other way round); names from one scheme never clash.
type Disk struct {
	root string
	tmp  string
	bufs sync.Pool // *[]byte of copyBufSize: a Put allocates no copy buffer
}

var _ Store = (*Disk)(nil)

// NewDisk returns a Disk storing objects under dir, creating dir (0700) if needed.
func NewDisk(dir string) (*Disk, error) {
	if dir == "" {
		return nil, errors.New("blob: disk: no directory given")
	}
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("blob: disk: %w", err)
	}
	tmp := filepath.Join(root, tmpDir)
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("blob: disk: %w", err)
	}
	d := &Disk{root: root, tmp: tmp}
	d.bufs.New = func() any { b := make([]byte, copyBufSize); return &b }
	return d, nil
}

// CleanTemp removes the temp files that Puts interrupted by a crash left behind. Call it
// at start, before any Put: a Put running meanwhile would fail.
func (d *Disk) CleanTemp() error {
	ents, err := os.ReadDir(d.tmp)
	if err != nil {
		return fmt.Errorf("blob: clean temp: %w", err)
	}
	var errs []error
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(d.tmp, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("blob: clean temp: %w", err)
	}
	return nil
}

func (d *Disk) path(name string) string {
	return filepath.Join(d.root, filepath.FromSlash(name))
}

// Put writes r to a temp file, fsyncs it, renames it into place and fsyncs the
// directories it changed. On any error, including ctx ending, the temp file is removed.
func (d *Disk) Put(ctx context.Context, name string, r io.Reader, size int64) (int64, error) {
	if err := checkName(name); err != nil {
		return 0, err
	}
	if err := checkSize(size); err != nil {
		return 0, err
	}
	n, err := d.put(ctx, name, r, size)
	if err != nil {
		return 0, fmt.Errorf("blob: put %s: %w", name, err)
	}
	return n, nil
}

func (d *Disk) put(ctx context.Context, name string, r io.Reader, size int64) (n int64, err error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	f, err := os.CreateTemp(d.tmp, "put-*")
	if err != nil {
		return 0, err
	}
	tmp := f.Name()
	defer func() {
		if f != nil {
			f.Close()
		}
		if err != nil {
			os.Remove(tmp)
		}
	}()

	pr := newPutReader(ctx, r, size)
	if err := d.copy(f, pr); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	err = f.Close()
	f = nil
	if err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}

	dst := d.path(name)
	// A concurrent Delete may prune a directory between mkdirs and the rename: retry.
	var dirty []string
	for try := 0; ; try++ {
		created, err := d.mkdirs(name)
		if err != nil {
			return 0, err
		}
		dirty = append(dirty, created...)
		err = os.Rename(tmp, dst)
		if err == nil {
			break
		}
		if try == 2 || !errors.Is(err, fs.ErrNotExist) {
			return 0, err
		}
		if _, serr := os.Stat(tmp); serr != nil {
			return 0, err // the temp file itself is gone (CleanTemp ran)
		}
	}
	dirty = append(dirty, filepath.Dir(dst))
	for _, dir := range dirty {
		if err := syncDir(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			os.Remove(dst) // not durable: report the failure and leave nothing behind
			return 0, err
		}
	}
	return pr.n, nil
}

func (d *Disk) copy(w io.Writer, r io.Reader) error {
	bp := d.bufs.Get().(*[]byte)
	defer d.bufs.Put(bp)
	buf := *bp
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// mkdirs creates the directories of name's parent path and returns the parents of those
// it created: their entries must be made durable too.
func (d *Disk) mkdirs(name string) ([]string, error) {
	var dirty []string
	dir := d.root
	segs := strings.Split(name, "/")
	for _, seg := range segs[:len(segs)-1] {
		sub := filepath.Join(dir, seg)
		err := os.Mkdir(sub, 0o700)
		switch {
		case err == nil:
			dirty = append(dirty, dir)
		case !errors.Is(err, fs.ErrExist):
			return dirty, err
		}
		dir = sub
	}
	return dirty, nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// notFound reports whether err means the path does not exist, including a file standing
// where a directory of the path would be.
func notFound(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// Open returns a reader of the object's range.
func (d *Disk) Open(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if err := checkRange(offset, length); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(d.path(name))
	if err != nil {
		if notFound(err) {
			return nil, fmt.Errorf("blob: open %s: %w", name, ErrNotFound)
		}
		return nil, fmt.Errorf("blob: open %s: %w", name, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("blob: open %s: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("blob: open %s: %w", name, ErrNotFound)
	}
	size := fi.Size()
	if offset > size {
		f.Close()
		return nil, fmt.Errorf("blob: open %s: %w (offset %d, size %d)", name, ErrInvalidRange, offset, size)
	}
	n := size - offset
	if length >= 0 && length < n {
		n = length
	}
	return &fileSection{SectionReader: io.NewSectionReader(f, offset, n), f: f}, nil
}

// fileSection reads a range of an open file. Besides Read it offers Seek and ReadAt
// (relative to the range), which http.ServeContent can use.
type fileSection struct {
	*io.SectionReader
	f *os.File
}

func (s *fileSection) Close() error { return s.f.Close() }

// Delete removes the object and the directories it leaves empty.
func (d *Disk) Delete(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	p := d.path(name)
	fi, err := os.Lstat(p)
	if err != nil {
		if notFound(err) {
			return nil
		}
		return fmt.Errorf("blob: delete %s: %w", name, err)
	}
	if fi.IsDir() {
		return nil // a directory of other objects, not an object
	}
	if err := os.Remove(p); err != nil && !notFound(err) {
		return fmt.Errorf("blob: delete %s: %w", name, err)
	}
	dir := filepath.Dir(p)
	// Make the removal durable: an erased object must not come back after a crash.
	if err := syncDir(dir); err != nil && !notFound(err) {
		return fmt.Errorf("blob: delete %s: %w", name, err)
	}
	for dir != d.root && os.Remove(dir) == nil {
		dir = filepath.Dir(dir)
	}
	return nil
}

// Stat describes the object.
func (d *Disk) Stat(ctx context.Context, name string) (Info, error) {
	if err := checkName(name); err != nil {
		return Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return Info{}, err
	}
	fi, err := os.Stat(d.path(name))
	if err != nil {
		if notFound(err) {
			return Info{}, fmt.Errorf("blob: stat %s: %w", name, ErrNotFound)
		}
		return Info{}, fmt.Errorf("blob: stat %s: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		return Info{}, fmt.Errorf("blob: stat %s: %w", name, ErrNotFound)
	}
	return Info{Name: name, Size: fi.Size(), Modified: fi.ModTime()}, nil
}

// List walks the directories that can hold names starting with prefix, reading them in
// batches so that memory does not grow with the number of objects.
func (d *Disk) List(ctx context.Context, prefix string, fn func(Info) error) error {
	return d.ListAfter(ctx, prefix, "", fn)
}

// ListAfter is List that skips names up to after, and directories whose every name
// would sort before it. Within a directory it still reads every entry: the file system
// keeps no order to start from.
func (d *Disk) ListAfter(ctx context.Context, prefix, after string, fn func(Info) error) error {
	if err := checkPrefix(prefix); err != nil {
		return err
	}
	rel := ""
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		rel = prefix[:i+1]
	}
	err := d.walk(ctx, d.path(rel), rel, listing{prefix: prefix, after: after}, fn)
	var stop stopError
	switch {
	case errors.As(err, &stop):
		return stop.err
	case err != nil:
		return fmt.Errorf("blob: list %q: %w", prefix, err)
	}
	return nil
}

// stopError carries an error from the caller's fn, which List returns as is.
type stopError struct{ err error }

func (e stopError) Error() string { return e.err.Error() }

// listing is what a walk lists: names that start with prefix and sort after after.
type listing struct{ prefix, after string }

// wantsDir reports whether a directory whose names start with sub (ending in "/") can
// hold a name of the listing. Every name under sub sorts before after when sub does and
// after does not itself start with sub.
func (l listing) wantsDir(sub string) bool {
	if !strings.HasPrefix(sub, l.prefix) && !strings.HasPrefix(l.prefix, sub) {
		return false
	}
	return l.after == "" || strings.HasPrefix(l.after, sub) || sub > l.after
}

func (l listing) wants(name string) bool {
	return strings.HasPrefix(name, l.prefix) && name > l.after
}

// walk lists dir, whose objects' names start with rel (empty or ending in "/").
func (d *Disk) walk(ctx context.Context, dir, rel string, l listing, fn func(Info) error) error {
	f, err := os.Open(dir)
	if err != nil {
		if notFound(err) {
			return nil
		}
		return err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.IsDir() {
		return err // an object where the prefix has a directory: nothing under it
	}
	for {
		ents, rerr := f.ReadDir(256)
		for _, e := range ents {
			if err := ctx.Err(); err != nil {
				return err
			}
			name := rel + e.Name()
			if strings.HasPrefix(e.Name(), ".") {
				continue // the temp area, or nothing of ours
			}
			if e.IsDir() {
				sub := name + "/"
				if l.wantsDir(sub) {
					if err := d.walk(ctx, filepath.Join(dir, e.Name()), sub, l, fn); err != nil {
						return err
					}
				}
				continue
			}
			if !e.Type().IsRegular() || !l.wants(name) || !ValidName(name) {
				continue
			}
			fi, err := e.Info()
			if err != nil {
				if notFound(err) {
					continue // deleted meanwhile
				}
				return err
			}
			if err := fn(Info{Name: name, Size: fi.Size(), Modified: fi.ModTime()}); err != nil {
				return stopError{err}
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}
