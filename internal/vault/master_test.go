package vault

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadMasterKeyCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	path := filepath.Join(dir, "master.key")
	m, created, err := LoadMasterKey(path, "", true)
	if err != nil || !created {
		t.Fatalf("LoadMasterKey(create): got created=%v, %v", created, err)
	}
	for name, want := range map[string]fs.FileMode{path: 0o600, dir: 0o700} {
		st, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != want {
			t.Errorf("%s: mode %04o, want %04o", name, got, want)
		}
	}
	again, created, err := LoadMasterKey(path, "", true)
	if err != nil || created {
		t.Fatalf("reload: got created=%v, %v", created, err)
	}
	if again.ID() != m.ID() || again.key != m.key {
		t.Fatalf("reload: ID %s, want %s", again.ID(), m.ID())
	}
	if len(m.ID()) != 16 {
		t.Fatalf("ID %q: want 16 hex digits", m.ID())
	}
	for _, s := range []string{m.String(), fmt.Sprintf("%v %+v %#v", m, m, m)} {
		if strings.Contains(s, m.Encode()) || strings.Contains(s, base64.RawStdEncoding.EncodeToString(m.key[:8])) {
			t.Fatalf("a printed master key shows the key: %s", s)
		}
	}
	if err := WriteMasterKey(path, GenerateMasterKey()); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("WriteMasterKey over an existing file: got %v, want %v", err, fs.ErrExist)
	}
	if again, _, _ := LoadMasterKey(path, "", false); again.ID() != m.ID() {
		t.Fatal("WriteMasterKey replaced the key")
	}
}

func TestLoadMasterKey(t *testing.T) {
	dir := t.TempDir()
	fileKey, envKey := GenerateMasterKey(), GenerateMasterKey()
	write := func(name string, data []byte, mode fs.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
		return p
	}
	good := write("good.key", []byte(fileKey.Encode()+"\n"), 0o600)
	raw := write("raw.key", fileKey.key[:], 0o400)
	urlSafe := write("url.key", []byte(base64.RawURLEncoding.EncodeToString(fileKey.key[:])), 0o600)
	open := write("open.key", []byte(fileKey.Encode()+"\n"), 0o644)
	short := write("short.key", []byte(base64.StdEncoding.EncodeToString(make([]byte, 16))+"\n"), 0o600)
	garbage := write("garbage.key", []byte("this is not a key!!\n"), 0o600)
	missing := filepath.Join(dir, "missing.key")

	tests := []struct {
		name    string
		path    string
		env     string
		create  bool
		wantID  string
		wantErr []string // substrings of the error
	}{
		{"base64 file", good, "", false, fileKey.ID(), nil},
		{"raw file", raw, "", false, fileKey.ID(), nil},
		{"url-safe file", urlSafe, "", false, fileKey.ID(), nil},
		{"env beats file", good, envKey.Encode(), false, envKey.ID(), nil},
		{"env without file", missing, envKey.Encode(), true, envKey.ID(), nil},
		{"env raw url", "", base64.RawURLEncoding.EncodeToString(envKey.key[:]), false, envKey.ID(), nil},
		{"env with newline", "", envKey.Encode() + "\n", false, envKey.ID(), nil},
		{"env bad base64", good, "not base64!", false, "", []string{EnvVar, "base64"}},
		{"env wrong length", good, base64.StdEncoding.EncodeToString(make([]byte, 16)), false, "", []string{EnvVar, "16 bytes"}},
		{"file open to others", open, "", false, "", []string{open, "chmod 600"}},
		{"file wrong length", short, "", false, "", []string{short, "16 bytes"}},
		{"file bad base64", garbage, "", false, "", []string{garbage, "base64"}},
		{"file missing", missing, "", false, "", []string{missing}},
		{"nothing", "", "", true, "", []string{EnvVar}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, created, err := LoadMasterKey(tt.path, tt.env, tt.create)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("got key %s, want an error", m.ID())
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not mention %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if created || m.ID() != tt.wantID {
				t.Fatalf("got %s (created=%v), want %s", m.ID(), created, tt.wantID)
			}
		})
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a key from the environment wrote a file: %v", err)
	}
}
