package roomserver

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"myelin/roomserver/event"
	"myelin/storage"
)

// ResolveLocalAlias answers another server's directory query (GET /query/directory) for an alias
// of this server: the room it names and the servers joined to that room, this one first when
// it is in the room. ErrNotFound if the alias is unknown here, ErrInvalid if it is not one of
// ours.
func (s *Server) ResolveLocalAlias(ctx context.Context, alias string) (roomID string, servers []string, err error) {
	rest, ok := strings.CutPrefix(alias, "#")
	_, server, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 || server != s.serverName {
		return "", nil, fmt.Errorf("%w: %q is not a room alias of this server", ErrInvalid, alias)
	}
	a, err := storage.GetRoomAlias(ctx, s.db, alias)
	if isNotFound(err) || err == nil && a.RoomID == "" {
		return "", nil, fmt.Errorf("%w: room alias %s", ErrNotFound, alias)
	}
	if err != nil {
		return "", nil, err
	}
	members, err := storage.RoomJoinedMembers(ctx, s.db, a.RoomID)
	if err != nil {
		return "", nil, err
	}
	for _, m := range members {
		if u, err := event.ParseUserID(m); err == nil && !slices.Contains(servers, string(u.Domain())) {
			servers = append(servers, string(u.Domain()))
		}
	}
	slices.Sort(servers)
	if i := slices.Index(servers, s.serverName); i > 0 {
		servers = slices.Insert(slices.Delete(servers, i, i+1), 0, s.serverName)
	}
	if servers == nil {
		servers = []string{}
	}
	return a.RoomID, servers, nil
}
