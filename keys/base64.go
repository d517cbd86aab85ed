package keys

import (
	"encoding/base64"
	"strings"
)

// EncodeBase64 encodes as the spec's unpadded base64: the standard alphabet without "=".
func EncodeBase64(b []byte) string {
	return base64.RawStdEncoding.EncodeToString(b)
}

// EncodeBase64URL encodes as URL-safe unpadded base64 ("-" and "_" for "+" and "/").
func EncodeBase64URL(b []byte) string {
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeBase64 decodes standard or URL-safe base64, padded or not, as the spec asks decoders to
// be lenient.
func DecodeBase64(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if strings.ContainsAny(s, "-_") {
		return base64.RawURLEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}
