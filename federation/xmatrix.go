package federation

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"

	"myelin/keys"
)

// ErrBadAuthHeader: an Authorization header that is not a well-formed X-Matrix header.
var ErrBadAuthHeader = errors.New("malformed X-Matrix authorization header")

// XMatrix is one X-Matrix Authorization header (server-server-api.md "Request Authentication").
type XMatrix struct {
	Origin string
	// Destination is empty when the sender is older than spec v1.3 and did not send it.
	Destination string
	KeyID       string
	Signature   string
}

// String formats the header value as the spec asks senders to, for older servers' sake: one
// space after the scheme, lower-case names, no whitespace around commas, every value quoted.
func (x XMatrix) String() string {
	dest := ""
	if x.Destination != "" {
		dest = ",destination=" + quoteParam(x.Destination)
	}
	return fmt.Sprintf(`X-Matrix origin=%s%s,key=%s,sig=%s`,
		quoteParam(x.Origin), dest, quoteParam(x.KeyID), quoteParam(x.Signature))
}

func quoteParam(v string) string {
	if !strings.ContainsAny(v, `"\`) {
		return `"` + v + `"`
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		if v[i] == '"' || v[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
	b.WriteByte('"')
	return b.String()
}

// ParseXMatrix parses an Authorization header value with the X-Matrix scheme, following RFC 9110
// section 11.4 as the spec describes it: a case-insensitive scheme, then comma-separated
// name=value parameters whose names are case-insensitive and whose values are tokens or quoted
// strings with backslash escapes. Colons are accepted in unquoted values, as older servers send
// them (and, leniently, anything else up to the next comma or space). Unknown parameters are ignored; origin, key and sig are required.
func ParseXMatrix(header string) (XMatrix, error) {
	scheme, rest, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "X-Matrix") {
		return XMatrix{}, fmt.Errorf("%w: not the X-Matrix scheme", ErrBadAuthHeader)
	}
	var x XMatrix
	seen := map[string]bool{}
	p := rest
	for {
		p = strings.TrimLeft(p, " \t")
		if p == "" {
			break
		}
		eq := strings.IndexByte(p, '=')
		if eq <= 0 {
			return XMatrix{}, fmt.Errorf("%w: expected name=value", ErrBadAuthHeader)
		}
		name := strings.ToLower(strings.TrimRight(p[:eq], " \t"))
		if !isToken(name) {
			return XMatrix{}, fmt.Errorf("%w: bad parameter name %q", ErrBadAuthHeader, name)
		}
		p = strings.TrimLeft(p[eq+1:], " \t")
		var value string
		if strings.HasPrefix(p, `"`) {
			v, n, err := unquoteParam(p)
			if err != nil {
				return XMatrix{}, err
			}
			value, p = v, p[n:]
		} else {
			end := strings.IndexAny(p, ", \t")
			if end < 0 {
				end = len(p)
			}
			value, p = p[:end], p[end:]
			// Senders must quote anything but a token; being lenient about ":" (older servers)
			// and base64's "/" and "+" costs nothing, as the values are checked afterwards.
			if value == "" || strings.ContainsAny(value, `"\`) {
				return XMatrix{}, fmt.Errorf("%w: bad unquoted value of %s", ErrBadAuthHeader, name)
			}
		}
		if seen[name] {
			return XMatrix{}, fmt.Errorf("%w: %s given twice", ErrBadAuthHeader, name)
		}
		seen[name] = true
		switch name {
		case "origin":
			x.Origin = value
		case "destination":
			x.Destination = value
		case "key":
			x.KeyID = value
		case "sig":
			x.Signature = value
		}
		p = strings.TrimLeft(p, " \t")
		if p == "" {
			break
		}
		if p[0] != ',' {
			return XMatrix{}, fmt.Errorf("%w: expected ',' between parameters", ErrBadAuthHeader)
		}
		p = p[1:]
	}
	switch {
	case x.Origin == "":
		return XMatrix{}, fmt.Errorf("%w: no origin", ErrBadAuthHeader)
	case x.KeyID == "":
		return XMatrix{}, fmt.Errorf("%w: no key", ErrBadAuthHeader)
	case x.Signature == "":
		return XMatrix{}, fmt.Errorf("%w: no sig", ErrBadAuthHeader)
	case seen["destination"] && x.Destination == "":
		return XMatrix{}, fmt.Errorf("%w: empty destination", ErrBadAuthHeader)
	}
	return x, nil
}

// unquoteParam reads the quoted string at the start of p and returns its unescaped value and
// the number of bytes it took.
func unquoteParam(p string) (string, int, error) {
	var b strings.Builder
	for i := 1; i < len(p); i++ {
		switch c := p[i]; c {
		case '"':
			return b.String(), i + 1, nil
		case '\\':
			if i+1 >= len(p) {
				return "", 0, fmt.Errorf("%w: unterminated escape", ErrBadAuthHeader)
			}
			i++
			b.WriteByte(p[i])
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, fmt.Errorf("%w: unterminated quoted value", ErrBadAuthHeader)
}

// isToken reports whether s is an RFC 9110 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// requestObject is the JSON object a request signature covers. content is the request body, nil
// for a request without one.
func requestObject(method, uri, origin, destination string, content []byte) (keys.Object, error) {
	o := keys.Object{}.
		With("method", keys.Quote(method)).
		With("uri", keys.Quote(uri)).
		With("origin", keys.Quote(origin)).
		With("destination", keys.Quote(destination))
	if len(content) > 0 {
		canon, err := keys.CanonicalJSON(content)
		if err != nil {
			return keys.Object{}, err
		}
		o = o.With("content", canon)
	}
	return o, nil
}

// SignRequest returns the X-Matrix header that authenticates a request from origin to
// destination. uri is the path with its query string, as sent on the request line.
func SignRequest(origin, destination string, key keys.SigningKey, method, uri string, content []byte) (XMatrix, error) {
	o, err := requestObject(method, uri, origin, destination, content)
	if err != nil {
		return XMatrix{}, err
	}
	sig := ed25519.Sign(key.Private, keys.SigningBytes(o))
	return XMatrix{Origin: origin, Destination: destination, KeyID: key.ID, Signature: keys.EncodeBase64(sig)}, nil
}

// VerifyRequest checks the signature of an X-Matrix header received by destination (our own
// server name, which senders that omit the parameter have signed all the same).
func VerifyRequest(x XMatrix, destination string, pub ed25519.PublicKey, method, uri string, content []byte) error {
	o, err := requestObject(method, uri, x.Origin, destination, content)
	if err != nil {
		return err
	}
	sigs := keys.Object{}.With(x.KeyID, keys.Quote(x.Signature))
	o = o.With("signatures", keys.Object{}.With(x.Origin, sigs.JSON()).JSON())
	return keys.VerifyObject(x.Origin, x.KeyID, pub, o)
}
