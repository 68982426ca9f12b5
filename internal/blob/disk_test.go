package blob

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDiskLayout(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "blobs")
	d, err := NewDisk(root)
	if err != nil {
		t.Fatal(err)
	}
	put(t, d, "files/ab/cd", []byte("x"))

	for _, c := range []struct {
		path string
		want fs.FileMode
	}{
		{root, fs.ModeDir | 0o700},
		{filepath.Join(root, tmpDir), fs.ModeDir | 0o700},
		{filepath.Join(root, "files"), fs.ModeDir | 0o700},
		{filepath.Join(root, "files", "ab"), fs.ModeDir | 0o700},
		{filepath.Join(root, "files", "ab", "cd"), 0o600},
	} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode(); got != c.want {
			t.Errorf("%s: mode %v, want %v", c.path, got, c.want)
		}
	}

	// Delete prunes the directories it empties, not the root.
	if err := d.Delete(t.Context(), "files/ab/cd"); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != tmpDir {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("after Delete the root holds %q, want only %s", names, tmpDir)
	}
}

func TestDiskCleanTemp(t *testing.T) {
	t.Parallel()
	d := openDisk(t).(*Disk)
	put(t, d, "keep", []byte("x"))
	stale := filepath.Join(d.tmp, "put-123")
	if err := os.WriteFile(stale, []byte("half an upload"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := list(t, d, ""); len(got) != 1 || got[0] != "keep" {
		t.Errorf("List: got %q, want [keep] (the temp area is not listed)", got)
	}
	if err := d.CleanTemp(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale temp file still there: %v", err)
	}
	if got := read(t, d, "keep", 0, -1); string(got) != "x" {
		t.Errorf("object after CleanTemp: got %q", got)
	}
}

// On disk, a name cannot be both an object and a directory of objects (MinIO refuses
// that too). Such a Put fails cleanly.
func TestDiskNameConflict(t *testing.T) {
	t.Parallel()
	d := openDisk(t).(*Disk)
	put(t, d, "a/b", []byte("x"))
	if _, err := d.Put(t.Context(), "a", strings.NewReader("y"), 1); err == nil {
		t.Error("Put(a) over the directory a/: no error")
	}
	put(t, d, "c", []byte("x"))
	if _, err := d.Put(t.Context(), "c/d", strings.NewReader("y"), 1); err == nil {
		t.Error("Put(c/d) under the object c: no error")
	}
	if got := diskLeftovers(t, d, ""); len(got) != 0 {
		t.Errorf("failed Puts left %q", got)
	}
	if got := list(t, d, ""); strings.Join(got, " ") != "a/b c" {
		t.Errorf("List: got %q, want [a/b c]", got)
	}
}

// Disk's reader can seek within its range, which http.ServeContent uses.
func TestDiskOpenSeek(t *testing.T) {
	t.Parallel()
	d := openDisk(t)
	put(t, d, "s", []byte("0123456789"))
	r, err := d.Open(t.Context(), "s", 2, 5)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rs, ok := r.(io.ReadSeeker)
	if !ok {
		t.Fatalf("reader %T is not an io.ReadSeeker", r)
	}
	if n, err := rs.Seek(0, io.SeekEnd); err != nil || n != 5 {
		t.Errorf("Seek to end: got %d, %v; want 5", n, err)
	}
	if _, err := rs.Seek(1, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(rs); string(b) != "3456" {
		t.Errorf("read after seek: got %q, want 3456", b)
	}
}
