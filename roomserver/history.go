package roomserver

import (
	"context"

	"myelin/roomserver/event"
)

// RemoteHistory is what the room server asks other servers about a room's past: its history
// before what this server has (backfill), and the state at an event, to bridge a gap in the
// DAG. Every event it returns has passed the receipt checks on signatures and content hashes
// (redacted when the hash does not match); the auth rules are the room server's to apply.
// The Options.Federation given to the room server provides it when it can (the federation
// package's Outbound does); without it, history stays as it was received.
type RemoteHistory interface {
	// Backfill is GET /backfill: up to limit events of roomID preceding the events from, them
	// included.
	Backfill(ctx context.Context, server, roomID string, v event.RoomVersion, from []string, limit int) ([]*event.Event, error)
	// StateIDs is GET /state_ids: the ids of the state of roomID before eventID, and of the
	// auth chain of that state.
	StateIDs(ctx context.Context, server, roomID, eventID string) (state, authChain []string, err error)
	// State is GET /state: the state before eventID and its auth chain, as events.
	State(ctx context.Context, server, roomID, eventID string, v event.RoomVersion) (state, authChain []*event.Event, err error)
	// Event is GET /event: one event.
	Event(ctx context.Context, server, eventID string, v event.RoomVersion) (*event.Event, error)
	// EventAuth is GET /event_auth: the auth chain of an event of roomID.
	EventAuth(ctx context.Context, server, roomID, eventID string, v event.RoomVersion) ([]*event.Event, error)
}

// history is the RemoteHistory of the room server's federation, nil without one.
func (s *Server) history() RemoteHistory {
	h, _ := s.opts.Federation.(RemoteHistory)
	return h
}
