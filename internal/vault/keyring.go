package vault

import (
	"bufio"
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// A key-encryption key (KEK) wraps every data key. It changes at every epoch by a
// one-way ratchet: KEK(n+1) = HKDF-SHA-256(KEK(n), "steward kek ratchet v1", n+1).
// A node holds only the KEK of the current epoch, in its key file; at rotation every
// data key is rewrapped under the next KEK and the file is rewritten with it, so the
// old KEK is gone from the node and cannot be derived from the new one. Every node of a
// deployment derives the same next key without any key passing between them: they
// agree on the epoch through the database (kek_state) and check the derived key
// against the key id recorded there.

// kekFormat is the first line of a key file.
const kekFormat = "steward-kek/1"

// KEK is the key-encryption key of one epoch.
type KEK struct {
	epoch int64
	key   [MasterKeySize]byte
	id    string
}

func newKEK(epoch int64, key []byte) KEK {
	k := KEK{epoch: epoch}
	copy(k.key[:], key)
	m := hmac.New(sha256.New, k.key[:])
	m.Write([]byte("steward kek id v1"))
	k.id = hex.EncodeToString(m.Sum(nil)[:8])
	return k
}

// Epoch is the epoch the key belongs to.
func (k KEK) Epoch() int64 { return k.epoch }

// ID identifies the key without revealing it.
func (k KEK) ID() string { return k.id }

// IsZero reports whether k is the zero value, not a key.
func (k KEK) IsZero() bool { return k.id == "" }

// String names the key by its epoch and ID, so that logging a KEK never leaks it.
func (k KEK) String() string { return fmt.Sprintf("vault.KEK(epoch %d, %s)", k.epoch, k.id) }

// GoString is String, for %#v.
func (k KEK) GoString() string { return k.String() }

// Next returns the KEK of the next epoch.
func (k KEK) Next() KEK {
	b, err := hkdf.Key(sha256.New, k.key[:], nil, "steward kek ratchet v1 "+strconv.FormatInt(k.epoch+1, 10), MasterKeySize)
	if err != nil {
		panic("vault: hkdf: " + err.Error()) // only for lengths HKDF cannot give
	}
	return newKEK(k.epoch+1, b)
}

// Forward returns the KEK of epoch, which must not be before k's.
func (k KEK) Forward(epoch int64) (KEK, error) {
	if epoch < k.epoch {
		return KEK{}, fmt.Errorf("vault: the key of epoch %d cannot be derived from epoch %d's: keys only go forward", epoch, k.epoch)
	}
	for k.epoch < epoch {
		k = k.Next()
	}
	return k, nil
}

// GenerateKEK returns a random KEK for epoch 0 (a new deployment).
func GenerateKEK() KEK {
	m := GenerateMasterKey()
	return newKEK(0, m.key[:])
}

// KEKFromMaster makes a master key (the single key of earlier releases) the KEK of
// epoch 0, so the data keys it wrapped stay readable.
func KEKFromMaster(m MasterKey) KEK { return newKEK(0, m.key[:]) }

// encode writes the key file's content.
func (k KEK) encode() []byte {
	return fmt.Appendf(nil, "%s\nepoch %d\nkey %s\n", kekFormat, k.epoch, base64.StdEncoding.EncodeToString(k.key[:]))
}

// ReadKEK reads a node's key file. A file of an earlier release (a master key alone:
// 32 bytes or their base64) is the KEK of epoch 0.
func ReadKEK(path string) (KEK, error) {
	data, err := readKeyFile(path, "key file", 1024)
	if err != nil {
		return KEK{}, err
	}
	if !bytes.HasPrefix(data, []byte(kekFormat+"\n")) {
		m, err := parseMasterFile(path, data)
		if err != nil {
			return KEK{}, err
		}
		return KEKFromMaster(m), nil
	}
	k, err := parseKEK(data)
	if err != nil {
		return KEK{}, fmt.Errorf("vault: key file %s: %w", path, err)
	}
	return k, nil
}

// parseKEK reads a key file's content.
func parseKEK(data []byte) (KEK, error) {
	if !bytes.HasPrefix(data, []byte(kekFormat+"\n")) {
		return KEK{}, errors.New("not a key file (" + kekFormat + ")")
	}
	var epoch int64 = -1
	var key []byte
	var err error
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Scan() // the format line
	for sc.Scan() {
		name, value, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		switch name {
		case "epoch":
			if epoch, err = strconv.ParseInt(value, 10, 64); err != nil || epoch < 0 {
				return KEK{}, fmt.Errorf("bad epoch %q", value)
			}
		case "key":
			if key, err = base64.StdEncoding.DecodeString(value); err != nil || len(key) != MasterKeySize {
				return KEK{}, fmt.Errorf("the key is not %d bytes of base64", MasterKeySize)
			}
		case "":
		default:
			return KEK{}, fmt.Errorf("unknown line %q", name)
		}
	}
	if epoch < 0 || key == nil {
		return KEK{}, errors.New("want an epoch and a key")
	}
	return newKEK(epoch, key), nil
}

// WriteKEK writes k to path, replacing the file there (if any) atomically, and first
// overwrites the old file's bytes with zeros, so that the key it held is destroyed on
// the node as far as a file system allows (copy-on-write file systems and SSD
// remapping may still keep old blocks: the disk's own encryption covers those).
// Parent directories are made with mode 0700.
func WriteKEK(path string, k KEK) error {
	if k.IsZero() {
		return errors.New("vault: write key file: no key")
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("vault: key file: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".kek-*")
	if err != nil {
		return fmt.Errorf("vault: key file: %w", err)
	}
	_, err = tmp.Write(k.encode())
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("vault: key file %s: %w", path, err)
	}
	if err := zeroFile(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("vault: key file %s: destroy the old key: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("vault: key file %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the new name durable; best effort: the rename is already visible
		d.Close()
	}
	return nil
}

// zeroFile overwrites a file's bytes with zeros in place and syncs it.
func zeroFile(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(make([]byte, st.Size()), 0); err != nil {
		return err
	}
	return f.Sync()
}
