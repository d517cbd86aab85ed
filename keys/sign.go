package keys

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Errors from VerifyJSON.
var (
	// ErrMissingSignature: the object carries no signature by that entity with that key.
	ErrMissingSignature = errors.New("missing signature")
	// ErrBadSignature: the signature is present but malformed or does not verify.
	ErrBadSignature = errors.New("bad signature")
)

// SigningBytes returns what a signature on obj covers: its canonical JSON without the
// "signatures" and "unsigned" members.
func SigningBytes(obj Object) []byte {
	return obj.Without("signatures", "unsigned").JSON()
}

// SignJSON signs a JSON object as the spec's "Signing JSON" describes and returns it as canonical
// JSON with the signature added under signatures[serverName][keyID]. Existing signatures and
// "unsigned" are kept.
func SignJSON(serverName, keyID string, key ed25519.PrivateKey, obj []byte) ([]byte, error) {
	o, err := ParseObject(obj)
	if err != nil {
		return nil, err
	}
	o, err = SignObject(serverName, keyID, key, o)
	if err != nil {
		return nil, err
	}
	return o.JSON(), nil
}

// SignObject is SignJSON on a parsed object.
func SignObject(serverName, keyID string, key ed25519.PrivateKey, o Object) (Object, error) {
	if len(key) != ed25519.PrivateKeySize {
		return Object{}, fmt.Errorf("signing key has %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	sig := ed25519.Sign(key, SigningBytes(o))
	return AddSignature(o, serverName, keyID, EncodeBase64(sig))
}

// AddSignature sets signatures[serverName][keyID] = sig on o, keeping the other signatures.
func AddSignature(o Object, serverName, keyID, sig string) (Object, error) {
	sigs := Object{}
	if raw, ok := o.Get("signatures"); ok {
		var err error
		if sigs, err = ParseObject(raw); err != nil {
			return Object{}, fmt.Errorf("signatures: %w", err)
		}
	}
	server := Object{}
	if raw, ok := sigs.Get(serverName); ok {
		var err error
		if server, err = ParseObject(raw); err != nil {
			return Object{}, fmt.Errorf("signatures of %s: %w", serverName, err)
		}
	}
	server = server.With(keyID, Quote(sig))
	sigs = sigs.With(serverName, server.JSON())
	return o.With("signatures", sigs.JSON()), nil
}

// Signatures returns the signatures an entity made on o: key id to base64 signature. Entries
// that are not strings are left out.
func Signatures(o Object, entity string) (map[string]string, error) {
	raw, ok := o.Get("signatures")
	if !ok {
		return nil, nil
	}
	sigs, err := ParseObject(raw)
	if err != nil {
		return nil, fmt.Errorf("signatures: %w", err)
	}
	raw, ok = sigs.Get(entity)
	if !ok {
		return nil, nil
	}
	entry, err := ParseObject(raw)
	if err != nil {
		return nil, fmt.Errorf("signatures of %s: %w", entity, err)
	}
	out := make(map[string]string, entry.Len())
	for _, m := range entry.Members() {
		if s, ok := Unquote(m.Value); ok {
			out[m.Key] = s
		}
	}
	return out, nil
}

// Ed25519KeyIDs returns, sorted, the ed25519 key ids in a Signatures result: the only
// algorithm the spec defines, so others are ignored as "Checking for a Signature" says.
func Ed25519KeyIDs(sigs map[string]string) []string {
	var ids []string
	for id := range sigs {
		if strings.HasPrefix(id, "ed25519:") {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// VerifyJSON checks the signature of serverName with keyID on a JSON object.
func VerifyJSON(serverName, keyID string, pub ed25519.PublicKey, obj []byte) error {
	o, err := ParseObject(obj)
	if err != nil {
		return err
	}
	return VerifyObject(serverName, keyID, pub, o)
}

// VerifyObject is VerifyJSON on a parsed object.
func VerifyObject(serverName, keyID string, pub ed25519.PublicKey, o Object) error {
	sigs, err := Signatures(o, serverName)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	sig64, ok := sigs[keyID]
	if !ok {
		return fmt.Errorf("%w: no signature by %s with %s", ErrMissingSignature, serverName, keyID)
	}
	sig, err := DecodeBase64(sig64)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("%w: %s %s: malformed signature", ErrBadSignature, serverName, keyID)
	}
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: %s %s: public key has %d bytes", ErrBadSignature, serverName, keyID, len(pub))
	}
	if !ed25519.Verify(pub, SigningBytes(o), sig) {
		return fmt.Errorf("%w: %s %s does not verify", ErrBadSignature, serverName, keyID)
	}
	return nil
}

// Unquote decodes a canonical JSON string value, as found in an Object member. Canonical strings
// only escape '"', '\\' and control characters, which keeps this short.
func Unquote(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", false
	}
	body := v[1 : len(v)-1]
	if !strings.ContainsRune(string(body), '\\') {
		return string(body), true
	}
	var b strings.Builder
	for i := 0; i < len(body); i++ {
		c := body[i]
		if c != '\\' || i+1 >= len(body) {
			b.WriteByte(c)
			continue
		}
		i++
		switch body[i] {
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			if i+4 >= len(body) {
				return "", false
			}
			var r byte
			for _, h := range body[i+3 : i+5] {
				r <<= 4
				switch {
				case h >= '0' && h <= '9':
					r |= h - '0'
				case h >= 'a' && h <= 'f':
					r |= h - 'a' + 10
				}
			}
			b.WriteByte(r)
			i += 4
		default:
			b.WriteByte(body[i])
		}
	}
	return b.String(), true
}
