package federation

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"

	"myelin/mxhttp"
	"myelin/roomserver"
)

const typeServerACL = "m.room.server_acl"

// ServerACL is the content of an m.room.server_acl event.
type ServerACL struct {
	Allow           []string
	Deny            []string
	AllowIPLiterals bool
}

// ParseServerACL reads the content of an m.room.server_acl event. Entries that are not
// strings are ignored; allow_ip_literals is true unless it is the boolean false.
func ParseServerACL(content []byte) ServerACL {
	var raw struct {
		Allow           []json.RawMessage `json:"allow"`
		Deny            []json.RawMessage `json:"deny"`
		AllowIPLiterals json.RawMessage   `json:"allow_ip_literals"`
	}
	_ = json.Unmarshal(content, &raw)
	strs := func(in []json.RawMessage) []string {
		var out []string
		for _, r := range in {
			var s string
			if json.Unmarshal(r, &s) == nil {
				out = append(out, s)
			}
		}
		return out
	}
	return ServerACL{Allow: strs(raw.Allow), Deny: strs(raw.Deny), AllowIPLiterals: string(raw.AllowIPLiterals) != "false"}
}

// Allows applies the ACL to a server name, in the order of the m.room.server_acl schema: an
// IP literal when those are not allowed is denied, then a match in deny denies, a match in
// allow allows, and anything else is denied. The port is not considered.
func (acl ServerACL) Allows(server string) bool {
	host := server
	if h, _, err := splitServerName(server); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if !acl.AllowIPLiterals && net.ParseIP(host) != nil {
		return false
	}
	for _, g := range acl.Deny {
		if globMatch(g, host) {
			return false
		}
	}
	for _, g := range acl.Allow {
		if globMatch(g, host) {
			return true
		}
	}
	return false
}

// globMatch matches s against a glob of the appendices ("Glob-style matching"): * matches
// any run of characters, ? exactly one; case-insensitive.
func globMatch(glob, s string) bool {
	g, t := []rune(strings.ToLower(glob)), []rune(strings.ToLower(s))
	// Iterative matching with backtracking to the last star: linear in practice, never
	// exponential on hostile patterns.
	gi, ti, star, mark := 0, 0, -1, 0
	for ti < len(t) {
		switch {
		case gi < len(g) && (g[gi] == '?' || g[gi] == t[ti]):
			gi++
			ti++
		case gi < len(g) && g[gi] == '*':
			star, mark = gi, ti
			gi++
		case star >= 0:
			gi = star + 1
			mark++
			ti = mark
		default:
			return false
		}
	}
	for gi < len(g) && g[gi] == '*' {
		gi++
	}
	return gi == len(g)
}

// checkACL answers 403 M_FORBIDDEN when the room's server ACL denies origin. A room without
// an ACL, or unknown here, allows (the endpoint then answers for the unknown room itself).
func (s *Server) checkACL(ctx context.Context, roomID, origin string) error {
	if s.cfg.Rooms == nil {
		return nil
	}
	ev, err := s.cfg.Rooms.CurrentStateEvent(ctx, roomID, typeServerACL, "")
	if errors.Is(err, roomserver.ErrNotFound) {
		return nil
	}
	if err != nil {
		return mxhttp.Internal(err)
	}
	if !ParseServerACL(ev.Content()).Allows(origin) {
		return mxhttp.Forbidden("server %s is denied by the room's server ACL", origin)
	}
	return nil
}

// roomScoped wraps a handler of an endpoint with a {roomID} in its path that server ACLs
// protect: the origin must be allowed by the room's ACL before the handler runs.
func (s *Server) roomScoped(h mxhttp.HandlerFunc) mxhttp.HandlerFunc {
	return func(r *http.Request) (mxhttp.Response, error) {
		roomID, err := pathVar(r, "roomID")
		if err != nil {
			return mxhttp.Response{}, err
		}
		if err := s.checkACL(r.Context(), roomID, OriginFromContext(r.Context())); err != nil {
			return mxhttp.Response{}, err
		}
		return h(r)
	}
}
