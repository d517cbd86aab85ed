package roomserver

import (
	"context"
	"encoding/json"

	"myelin/roomserver/event"
)

// Federation is what the room server needs from other servers to take part in rooms it is not
// in (yet): the join, leave and knock handshakes, and invites of their users. cmd/myelin wires
// it to the federation package; without it (Options.Federation nil) the room server only
// works with rooms it is in.
//
// The events it returns have had their signatures and content hashes checked; the room server
// checks the auth rules.
type Federation interface {
	// MakeMembership asks server for a template of a membership event ("join", "leave" or
	// "knock") of userID in roomID, telling it the room versions this server supports. It
	// returns the room version and the template as the server sent it.
	MakeMembership(ctx context.Context, server, membership, roomID, userID string, versions []string) (roomVersion string, template json.RawMessage, err error)
	// SendJoin sends a signed join event to the server that made its template and returns the
	// room as that server knows it.
	SendJoin(ctx context.Context, server string, join *event.Event) (*JoinedRoom, error)
	// SendLeave sends a signed leave event (a leave, a rejected invite, a withdrawn knock).
	SendLeave(ctx context.Context, server string, leave *event.Event) error
	// SendKnock sends a signed knock event and returns the stripped state the server gave.
	SendKnock(ctx context.Context, server string, knock *event.Event) ([]json.RawMessage, error)
	// SendInvite asks the invitee's server to countersign an invite event, giving it
	// inviteRoomState (PDUs of the room's create, join rules, name, ... events), and returns
	// the event it signed.
	SendInvite(ctx context.Context, server string, invite *event.Event, inviteRoomState []json.RawMessage) (*event.Event, error)
	// QueryDirectory asks the server of a room alias which room it names, and which servers
	// are in that room.
	QueryDirectory(ctx context.Context, alias string) (roomID string, servers []string, err error)
}

// JoinedRoom is the answer to a join: the state of the room before the join event and the
// auth chain of that state and of the join event. Event is the join event as the resident
// server returned it, with its signature when it had to add one (restricted joins); nil when
// it returned none.
type JoinedRoom struct {
	Origin    string
	State     []*event.Event
	AuthChain []*event.Event
	Event     *event.Event
}
