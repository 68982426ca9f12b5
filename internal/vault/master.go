package vault

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// EnvVar is the environment variable that holds the master key (base64), named in
// errors about it. It takes precedence over the key file.
const EnvVar = "STEWARD_MASTER_KEY"

// MasterKeySize is the length of a master key in bytes.
const MasterKeySize = 32

// MasterKey is the operator's key that wraps every data key. Losing it loses every
// member's files; it belongs in the operator's backups, never in the database's.
type MasterKey struct {
	key [MasterKeySize]byte
	id  string
}

// newMasterKey builds a master key from its bytes and computes its ID.
func newMasterKey(b []byte) MasterKey {
	var m MasterKey
	copy(m.key[:], b)
	sum := sha256.Sum256(m.key[:])
	m.id = hex.EncodeToString(sum[:8])
	return m
}

// ParseMasterKey decodes a master key written in base64 (standard or URL alphabet,
// padded or not), as in EnvVar or a key file.
func ParseMasterKey(s string) (MasterKey, error) {
	s = strings.TrimSpace(s)
	var lastErr error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawURLEncoding, base64.RawStdEncoding, base64.URLEncoding} {
		b, err := enc.DecodeString(s)
		if err != nil {
			lastErr = err
			continue
		}
		if len(b) != MasterKeySize {
			return MasterKey{}, fmt.Errorf("decodes to %d bytes, want %d", len(b), MasterKeySize)
		}
		return newMasterKey(b), nil
	}
	return MasterKey{}, fmt.Errorf("not valid base64: %w", lastErr)
}

// GenerateMasterKey returns a new random master key.
func GenerateMasterKey() MasterKey {
	var b [MasterKeySize]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return newMasterKey(b[:])
}

// ID identifies the key without revealing it: the first 8 bytes of its SHA-256, in
// hex. Every wrapped data key records the ID of the master key that wrapped it.
func (m MasterKey) ID() string { return m.id }

// IsZero reports whether m is the zero value, not a key.
func (m MasterKey) IsZero() bool { return m.id == "" }

// Encode returns the key in standard base64, the form EnvVar and key files take.
func (m MasterKey) Encode() string { return base64.StdEncoding.EncodeToString(m.key[:]) }

// String names the key by its ID, so that logging a MasterKey never leaks it.
func (m MasterKey) String() string { return "vault.MasterKey(" + m.id + ")" }

// GoString is String, for %#v.
func (m MasterKey) GoString() string { return m.String() }

// LoadMasterKey reads the master key: from envValue (the value of EnvVar) when it is
// not empty, else from the file at path, which holds either 32 raw bytes or their
// base64 and an optional newline, and must not be accessible to group or others.
// When neither exists and create is true, it generates a key, writes it to path
// (mode 0600, parent directories 0700) and reports created, so that the caller can
// warn the operator to back it up.
func LoadMasterKey(path, envValue string, create bool) (MasterKey, bool, error) {
	if envValue != "" {
		m, err := ParseMasterKey(envValue)
		if err != nil {
			return MasterKey{}, false, fmt.Errorf("vault: master key in %s: %w", EnvVar, err)
		}
		return m, false, nil
	}
	if path == "" {
		return MasterKey{}, false, fmt.Errorf("vault: no master key: set %s or a key file", EnvVar)
	}
	m, err := readMasterKey(path)
	if err == nil {
		return m, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) || !create {
		return MasterKey{}, false, err
	}
	m = GenerateMasterKey()
	if err := WriteMasterKey(path, m); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another process created it first: use theirs.
			m, err := readMasterKey(path)
			return m, false, err
		}
		return MasterKey{}, false, err
	}
	return m, true, nil
}

func readMasterKey(path string) (MasterKey, error) {
	// A key file is 32 bytes or about 45 characters; refuse to slurp anything large.
	data, err := readKeyFile(path, "master key file", 256)
	if err != nil {
		return MasterKey{}, err
	}
	return parseMasterFile(path, data)
}

// parseMasterFile reads a master key file's content: 32 raw bytes or their base64.
func parseMasterFile(path string, data []byte) (MasterKey, error) {
	if len(data) == MasterKeySize {
		return newMasterKey(data), nil
	}
	m, err := ParseMasterKey(string(data))
	if err != nil {
		return MasterKey{}, fmt.Errorf("vault: master key file %s: want 32 raw bytes or their base64: %w", path, err)
	}
	return m, nil
}

// readKeyFile reads a file that holds a key (what names it in errors): a regular
// file, of at most limit bytes, open to no one but its owner.
func readKeyFile(path, what string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("vault: %s: %w", what, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("vault: %s: %w", what, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("vault: %s %s: not a regular file", what, path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("vault: %s %s has mode %04o, open to group or others: run chmod 600 %s", what, path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("vault: %s %s: %w", what, path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("vault: %s %s: too long to be a key file", what, path)
	}
	return data, nil
}

// WriteMasterKey writes m to a new file at path in base64 with mode 0600, creating
// parent directories with mode 0700. It refuses to overwrite an existing file: that
// would lose the key every data key is wrapped with.
func WriteMasterKey(path string, m MasterKey) error {
	if m.IsZero() {
		return errors.New("vault: write master key: no key")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("vault: master key file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("vault: master key file: %w", err)
	}
	_, err = f.WriteString(m.Encode() + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("vault: master key file %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync() // make the new name durable; best effort
		d.Close()
	}
	return nil
}
