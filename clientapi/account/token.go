package account

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
)

// Token prefixes make a leaked token recognisable to secret scanners and to the person reading it.
const (
	AccessTokenPrefix  = "mya_"
	RefreshTokenPrefix = "myr_"
)

// NewToken returns a random 256-bit token with a prefix. Only its HashToken is ever stored.
func NewToken(prefix string) string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// HashToken is how a token is stored and looked up: tokens carry 256 bits of entropy, so a plain
// SHA-256 (no salt, no stretching) is enough to make a stolen database useless for logging in.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// NewDeviceID returns a random device id of ten upper-case letters, as other servers do.
func NewDeviceID() string { return randomString("ABCDEFGHIJKLMNOPQRSTUVWXYZ", 10) }

// NewLocalpart returns a random localpart for a registration that did not ask for a name.
func NewLocalpart() string { return "u" + randomString("abcdefghijklmnopqrstuvwxyz0123456789", 15) }

func randomString(alphabet string, n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		// 256 is not a multiple of 26 or 36; the slight bias does not matter for ids.
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
