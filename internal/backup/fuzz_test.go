package backup

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fuzzBackup writes a genuine backup of a small database entry and returns the key,
// its manifest, the entry's content and the archive's bytes.
func fuzzBackup(f *testing.F) (key []byte, m Manifest, content, archive []byte) {
	dir := f.TempDir()
	key = []byte("0123456789abcdef0123456789abcdef")
	content = []byte("SQLite format 3\x00 a database, or what stands for one here")
	file := filepath.Join(dir, databaseEntry(EngineSQLite))
	if err := os.WriteFile(file, content, 0o600); err != nil {
		f.Fatal(err)
	}
	e, err := describe(file)
	if err != nil {
		f.Fatal(err)
	}
	m = Manifest{Format: Format, Deployment: Deployment(key), Engine: EngineSQLite, CreatedAt: 1764244800000,
		SchemaVersion: 21, NewestErasure: 1764240000000, Entries: []Entry{e}}
	if m.MAC, err = m.mac(key); err != nil {
		f.Fatal(err)
	}
	out := filepath.Join(dir, "backup.tar")
	if err := writeArchive(out, m, file); err != nil {
		f.Fatal(err)
	}
	if archive, err = os.ReadFile(out); err != nil {
		f.Fatal(err)
	}
	return key, m, content, archive
}

// A manifest is read strictly: whatever checkManifest accepts is the genuine manifest
// (its MAC covers every field), whatever else the bytes hold (members twice, in
// another case, data after them).
func FuzzCheckManifest(f *testing.F) {
	key, m, _, _ := fuzzBackup(f)
	mb, _ := json.Marshal(m)
	text := string(mb)
	for _, s := range []string{
		text,
		strings.Replace(text, `"engine":"sqlite"`, `"engine":"sqlite","Engine":"postgres"`, 1),
		strings.Replace(text, `"engine":"sqlite"`, `"engine":"postgres","engine":"sqlite"`, 1),
		strings.Replace(text, `"entries":[`, `"entries":[{"name":"../../etc/passwd","size":1,"sha256":""},`, 1),
		strings.Replace(text, `"format":`, `"extra":1,"format":`, 1),
		text + `{"format":"x"}`,
		`null`,
		strings.Repeat(`[`, 10000),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := checkManifest(b, key)
		if err != nil {
			return
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("checkManifest accepted %q as %+v, want the genuine %+v", b, got, m)
		}
	})
}

// A backup file is read without panicking whatever it holds, and one that verifies is
// the genuine backup: its manifest, and the entry written out holds the bytes backed up.
func FuzzVerify(f *testing.F) {
	key, m, content, archive := fuzzBackup(f)
	f.Add(archive)
	f.Add(archive[:len(archive)-1024])
	f.Add(archive[:512])
	f.Add(append(append([]byte(nil), archive[:len(archive)-1024]...), archive...))
	f.Add(bytes.Replace(archive, []byte("a database"), []byte("A database"), 1))
	f.Add([]byte{})
	dir := f.TempDir()
	path := filepath.Join(dir, "backup.tar")
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		out := t.TempDir()
		got, err := Verify(path, key, "", out)
		if err != nil {
			return
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("Verify accepted a manifest %+v, want %+v", got, m)
		}
		written, err := os.ReadFile(filepath.Join(out, databaseEntry(EngineSQLite)))
		if err != nil || !bytes.Equal(written, content) {
			t.Fatalf("the entry written holds %q (%v), want %q", written, err, content)
		}
		entries, _ := os.ReadDir(out)
		if len(entries) != 1 {
			t.Fatalf("Verify wrote %d files, want the entry alone", len(entries))
		}
	})
}
