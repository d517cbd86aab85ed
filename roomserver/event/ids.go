package event

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// ErrInvalidID is returned (wrapped) for a malformed user id, room id or server name.
var ErrInvalidID = errors.New("invalid identifier")

// maxServerNameBytes bounds a server name: dns-name is at most 255 characters, plus a port.
const maxServerNameBytes = 255 + 6

// A ServerName is a homeserver's name: hostname (DNS name, IPv4 literal or [IPv6] literal)
// with an optional port. Server names are case-sensitive.
type ServerName string

// ParseServerName checks s against the grammar of the appendix "Server Name".
func ParseServerName(s string) (ServerName, error) {
	if s == "" || len(s) > maxServerNameBytes {
		return "", fmt.Errorf("%w: server name %q", ErrInvalidID, s)
	}
	host, port := ServerName(s).Split()
	if port != "" || strings.HasSuffix(s, ":") {
		if len(port) < 1 || len(port) > 5 || strings.Trim(port, "0123456789") != "" {
			return "", fmt.Errorf("%w: server name %q has a bad port", ErrInvalidID, s)
		}
	}
	if strings.HasPrefix(host, "[") {
		ip := strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		if !strings.HasSuffix(host, "]") || len(ip) < 2 || len(ip) > 45 ||
			strings.Trim(ip, "0123456789abcdefABCDEF:.") != "" {
			return "", fmt.Errorf("%w: server name %q has a bad IPv6 literal", ErrInvalidID, s)
		}
		if a, err := netip.ParseAddr(ip); err != nil || !a.Is6() {
			return "", fmt.Errorf("%w: server name %q has a bad IPv6 literal", ErrInvalidID, s)
		}
		return ServerName(s), nil
	}
	// dns-name = 1*255 (DIGIT / ALPHA / "-" / "."). IPv4 literals are a subset of it; like
	// Synapse, a dotted quad with an octet above 255 is not rejected here, it simply will not
	// resolve.
	if host == "" || len(host) > 255 {
		return "", fmt.Errorf("%w: server name %q", ErrInvalidID, s)
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return "", fmt.Errorf("%w: server name %q has a bad character", ErrInvalidID, s)
		}
	}
	return ServerName(s), nil
}

// Split returns the host (with brackets for IPv6) and the port ("" if none). It does not
// validate.
func (n ServerName) Split() (host, port string) {
	s := string(n)
	if strings.HasPrefix(s, "[") {
		if i := strings.LastIndex(s, "]"); i >= 0 {
			if rest, ok := strings.CutPrefix(s[i+1:], ":"); ok {
				return s[:i+1], rest
			}
			return s, ""
		}
		return s, ""
	}
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		return s[:i], s[i+1:]
	}
	return s, ""
}

func (n ServerName) String() string { return string(n) }

// A UserID is "@localpart:domain".
type UserID struct {
	local  string
	domain ServerName
}

// ParseUserID parses a user id leniently, as the spec requires for ids seen over federation
// ("Historical User IDs"): the localpart may hold any code point except ':' and NUL, and may be
// empty. Use ValidateLocalpart (or Compliant) before creating a user.
func ParseUserID(s string) (UserID, error) {
	if len(s) > MaxIDBytes {
		return UserID{}, fmt.Errorf("%w: user id longer than %d bytes", ErrInvalidID, MaxIDBytes)
	}
	rest, ok := strings.CutPrefix(s, "@")
	if !ok {
		return UserID{}, fmt.Errorf("%w: user id %q does not start with @", ErrInvalidID, s)
	}
	local, domain, ok := strings.Cut(rest, ":")
	if !ok {
		return UserID{}, fmt.Errorf("%w: user id %q has no domain", ErrInvalidID, s)
	}
	if !utf8.ValidString(local) || strings.IndexByte(local, 0) >= 0 {
		return UserID{}, fmt.Errorf("%w: user id %q has a bad localpart", ErrInvalidID, s)
	}
	name, err := ParseServerName(domain)
	if err != nil {
		return UserID{}, err
	}
	return UserID{local: local, domain: name}, nil
}

// NewUserID makes the id of a new local user; the localpart must meet the current grammar.
func NewUserID(local string, domain ServerName) (UserID, error) {
	if err := ValidateLocalpart(local); err != nil {
		return UserID{}, err
	}
	u := UserID{local: local, domain: domain}
	if len(u.String()) > MaxIDBytes {
		return UserID{}, fmt.Errorf("%w: user id longer than %d bytes", ErrInvalidID, MaxIDBytes)
	}
	return u, nil
}

// ValidateLocalpart checks a localpart against the user id grammar of spec v1.8 and later:
// non-empty, only a-z, 0-9 and "._=-/+". Upper case is refused rather than folded, so that
// the caller decides how to map a requested name.
func ValidateLocalpart(local string) error {
	if local == "" {
		return fmt.Errorf("%w: empty localpart", ErrInvalidID)
	}
	for i := 0; i < len(local); i++ {
		c := local[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("._=-/+", c) >= 0) {
			return fmt.Errorf("%w: localpart %q may only contain a-z, 0-9 and ._=-/+", ErrInvalidID, local)
		}
	}
	return nil
}

// Compliant reports whether the localpart is made of U+0021 to U+007E only and is not empty;
// ids that are not may take part in rooms but should not be forwarded to clients elsewhere.
func (u UserID) Compliant() bool {
	if u.local == "" {
		return false
	}
	for i := 0; i < len(u.local); i++ {
		if u.local[i] < 0x21 || u.local[i] > 0x7e {
			return false
		}
	}
	return true
}

func (u UserID) String() string     { return "@" + u.local + ":" + string(u.domain) }
func (u UserID) Local() string      { return u.local }
func (u UserID) Domain() ServerName { return u.domain }
func (u UserID) IsZero() bool       { return u.domain == "" }

// A RoomID is "!opaque:domain" (room versions 1–11) or "!opaque" (version 12, where opaque is
// the create event's reference hash).
type RoomID struct {
	local  string
	domain ServerName
}

// ParseRoomID parses either form of room id.
func ParseRoomID(s string) (RoomID, error) {
	if len(s) > MaxIDBytes {
		return RoomID{}, fmt.Errorf("%w: room id longer than %d bytes", ErrInvalidID, MaxIDBytes)
	}
	rest, ok := strings.CutPrefix(s, "!")
	if !ok || rest == "" {
		return RoomID{}, fmt.Errorf("%w: room id %q does not start with !", ErrInvalidID, s)
	}
	local, domain, hasDomain := strings.Cut(rest, ":")
	if !utf8.ValidString(local) || strings.IndexByte(local, 0) >= 0 {
		return RoomID{}, fmt.Errorf("%w: room id %q has a bad localpart", ErrInvalidID, s)
	}
	if !hasDomain {
		return RoomID{local: local}, nil
	}
	name, err := ParseServerName(domain)
	if err != nil {
		return RoomID{}, err
	}
	return RoomID{local: local, domain: name}, nil
}

func (r RoomID) String() string {
	if r.domain == "" {
		return "!" + r.local
	}
	return "!" + r.local + ":" + string(r.domain)
}

// Local is the opaque part: the localpart, or the create event's hash in room version 12.
func (r RoomID) Local() string { return r.local }

// Domain is the server that created the room, or "" for room version 12 room ids.
func (r RoomID) Domain() ServerName { return r.domain }
func (r RoomID) IsZero() bool       { return r.local == "" }
