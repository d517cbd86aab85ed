package keys

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
)

// ErrInsecureKeyFile: a signing key file that group or others may read or write. The server
// refuses it rather than sign with a key others may have copied.
var ErrInsecureKeyFile = errors.New("signing key file is accessible by group or others (chmod 600 it)")

// A SigningKey is this server's ed25519 signing key and its key id ("ed25519:<version>").
type SigningKey struct {
	ID      string
	Private ed25519.PrivateKey
}

// Public returns the verification key that other servers fetch.
func (k SigningKey) Public() ed25519.PublicKey {
	return k.Private.Public().(ed25519.PublicKey)
}

const keyVersionAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"

// GenerateSigningKey makes a new key with a short random version, in the "a_XXXX" style of
// Synapse, so that ids stay distinct across key rotations.
func GenerateSigningKey() (SigningKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return SigningKey{}, err
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return SigningKey{}, err
	}
	version := []byte("a_")
	for _, c := range b {
		version = append(version, keyVersionAlphabet[int(c)%len(keyVersionAlphabet)])
	}
	return SigningKey{ID: "ed25519:" + string(version), Private: priv}, nil
}

// WriteSigningKey writes k in the Synapse/Dendrite format ("ed25519 <version> <seed>") to a new
// file of mode 0600. It refuses to overwrite an existing file: replacing a server's key loses
// its identity towards every server that cached the old one.
func WriteSigningKey(path string, k SigningKey) error {
	version, ok := strings.CutPrefix(k.ID, "ed25519:")
	if !ok || !validKeyVersion(version) {
		return fmt.Errorf("invalid signing key id %q", k.ID)
	}
	if len(k.Private) != ed25519.PrivateKeySize {
		return errors.New("invalid signing key")
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	line := fmt.Sprintf("ed25519 %s %s\n", version, EncodeBase64(k.Private.Seed()))
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func validKeyVersion(v string) bool {
	if v == "" {
		return false
	}
	for _, c := range v {
		if !strings.ContainsRune(keyVersionAlphabet, c) {
			return false
		}
	}
	return true
}

// LoadSigningKey reads a signing key file in the Synapse format (lines "ed25519 <version>
// <unpadded base64 seed>"; the first ed25519 line is used) or Dendrite's PEM format ("MATRIX
// PRIVATE KEY" block with a Key-ID header). A file that group or others can access is refused
// with ErrInsecureKeyFile.
func LoadSigningKey(path string) (SigningKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		return SigningKey{}, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return SigningKey{}, fmt.Errorf("%w: %s has mode %v", ErrInsecureKeyFile, path, st.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return SigningKey{}, err
	}
	k, err := parseSigningKey(data)
	if err != nil {
		return SigningKey{}, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

func parseSigningKey(data []byte) (SigningKey, error) {
	if block, _ := pem.Decode(data); block != nil {
		if block.Type != "MATRIX PRIVATE KEY" {
			return SigningKey{}, fmt.Errorf("unexpected PEM block %q", block.Type)
		}
		id := block.Headers["Key-ID"]
		if version, ok := strings.CutPrefix(id, "ed25519:"); !ok || !validKeyVersion(version) {
			return SigningKey{}, fmt.Errorf("invalid Key-ID %q", id)
		}
		return keyFromSeed(id, block.Bytes)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		if len(fields) != 3 || fields[0] != "ed25519" {
			continue
		}
		if !validKeyVersion(fields[1]) {
			return SigningKey{}, fmt.Errorf("invalid key version %q", fields[1])
		}
		seed, err := DecodeBase64(fields[2])
		if err != nil {
			return SigningKey{}, errors.New("signing key seed is not base64")
		}
		return keyFromSeed("ed25519:"+fields[1], seed)
	}
	return SigningKey{}, errors.New("no ed25519 signing key found")
}

func keyFromSeed(id string, seed []byte) (SigningKey, error) {
	if len(seed) != ed25519.SeedSize {
		return SigningKey{}, fmt.Errorf("signing key seed has %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	return SigningKey{ID: id, Private: ed25519.NewKeyFromSeed(seed)}, nil
}
