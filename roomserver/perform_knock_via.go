package roomserver

import (
	"context"

	"myelin/roomserver/event"
)

// KnockVia is Knock with the servers the client named (the via and server_name parameters of
// POST /knock, or those a room alias resolved to) tried first when this server is not in the
// room.
func (s *Server) KnockVia(ctx context.Context, roomID, userID, reason string, via []string) (*event.Event, error) {
	if len(via) > 0 && s.opts.Federation != nil && s.isLocalUser(userID) {
		in, err := s.participating(ctx, roomID)
		if err != nil {
			return nil, err
		}
		if !in {
			return s.knockRemote(ctx, roomID, userID, reason, via)
		}
	}
	return s.Knock(ctx, roomID, userID, reason)
}
