package keys

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// A RetiredKey is the public half of a signing key this server no longer signs with. Other
// servers still need it to verify events signed before the rotation; the private half is gone.
type RetiredKey struct {
	Key       string `json:"key"` // unpadded base64 public key
	ExpiredTS int64  `json:"expired_ts"`
}

// LoadRetiredKeys reads the retired keys file, in the shape of a key document's
// old_verify_keys. A missing file means no key was ever retired.
func LoadRetiredKeys(path string) (map[string]RetiredKey, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]RetiredKey{}, nil
	}
	if err != nil {
		return nil, err
	}
	keys := map[string]RetiredKey{}
	if err := json.Unmarshal(data, &keys); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for id, k := range keys {
		if pub, err := DecodeBase64(k.Key); err != nil || len(pub) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%s: retired key %s is not an ed25519 public key", path, id)
		}
	}
	return keys, nil
}

// RotateSigningKey retires the key at keyPath into the retired keys file, as expired now, and
// puts a new key in its place. The new key is written first and renamed over the old one last,
// so a crash leaves either the old key in use or the new one, and the old public key is never
// lost. The running server must be restarted to sign with the new key.
func RotateSigningKey(keyPath, retiredPath string, now time.Time) (old, fresh SigningKey, err error) {
	if old, err = LoadSigningKey(keyPath); err != nil {
		return SigningKey{}, SigningKey{}, err
	}
	retired, err := LoadRetiredKeys(retiredPath)
	if err != nil {
		return SigningKey{}, SigningKey{}, err
	}
	if fresh, err = GenerateSigningKey(); err != nil {
		return SigningKey{}, SigningKey{}, err
	}
	tmp := keyPath + ".new"
	_ = os.Remove(tmp) // a leftover of an interrupted rotation was never used
	if err := WriteSigningKey(tmp, fresh); err != nil {
		return SigningKey{}, SigningKey{}, err
	}
	retired[old.ID] = RetiredKey{Key: EncodeBase64(old.Public()), ExpiredTS: now.UnixMilli()}
	if err := writeJSONFile(retiredPath, retired); err != nil {
		os.Remove(tmp)
		return SigningKey{}, SigningKey{}, err
	}
	if err := os.Rename(tmp, keyPath); err != nil {
		return SigningKey{}, SigningKey{}, err
	}
	return old, fresh, nil
}

// writeJSONFile replaces path atomically with v as JSON.
func writeJSONFile(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(append(data, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
