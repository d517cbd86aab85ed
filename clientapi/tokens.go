// Pagination and sync tokens, shared by /sync (prev_batch, next_batch) and /messages (from,
// to, start, end). To the room-endpoints code: /messages accepts every token ParseRoomToken
// accepts, which includes a /sync next_batch (its events position is used), as the spec asks.
//
// Formats (opaque to clients):
//
//	"s{events}"                      a position on the events stream: between the event at
//	                                 stream position {events} and the next one
//	"t{depth}_{events}"              the same position with the depth of the event at it, for
//	                                 topological pagination
//	"s{events}_{account_data}_{to_device}_{device_lists}_{receipts}_{typing}_{notifications}[_{presence}]"
//	                                 a /sync token: one position per stream; a RoomToken
//	                                 reads only its first number. The presence position is
//	                                 written only when not 0 (presence off leaves tokens as
//	                                 they were), and a token without it reads as 0
//
// Every position comes from the database's stream_positions, so a token stays valid across
// restarts.
package clientapi

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// errBadToken is wrapped by the parse errors of tokens; handlers answer M_INVALID_PARAM.
var errBadToken = errors.New("invalid pagination token")

// RoomToken is a position in a room's timeline: after the event at stream position Stream.
// Depth is set (Topological true) when the token came from a "t" token.
type RoomToken struct {
	Topological bool
	Depth       int64
	Stream      int64
}

// String encodes the token.
func (t RoomToken) String() string {
	if t.Topological {
		return fmt.Sprintf("t%d_%d", t.Depth, t.Stream)
	}
	return "s" + strconv.FormatInt(t.Stream, 10)
}

// ParseRoomToken decodes "s{n}", "t{depth}_{n}" or a /sync token.
func ParseRoomToken(s string) (RoomToken, error) {
	if len(s) < 2 {
		return RoomToken{}, fmt.Errorf("%w: %q", errBadToken, s)
	}
	switch s[0] {
	case 't':
		d, n, ok := strings.Cut(s[1:], "_")
		depth, err1 := strconv.ParseInt(d, 10, 64)
		stream, err2 := strconv.ParseInt(n, 10, 64)
		// stream may be negative: backfilled history (storage/backfill.go).
		if !ok || err1 != nil || err2 != nil || depth < 0 {
			return RoomToken{}, fmt.Errorf("%w: %q", errBadToken, s)
		}
		return RoomToken{Topological: true, Depth: depth, Stream: stream}, nil
	case 's':
		first, _, _ := strings.Cut(s[1:], "_")
		stream, err := strconv.ParseInt(first, 10, 64)
		if err != nil || stream < 0 {
			return RoomToken{}, fmt.Errorf("%w: %q", errBadToken, s)
		}
		return RoomToken{Stream: stream}, nil
	}
	return RoomToken{}, fmt.Errorf("%w: %q", errBadToken, s)
}

// SyncToken is a /sync since/next_batch: a position on each stream /sync reads.
type SyncToken struct {
	Events      int64
	AccountData int64
	ToDevice    int64
	DeviceLists int64
	Receipts    int64 // no receipts stream yet: always 0
	Typing      int64 // no typing stream yet: always 0
	// Notifications is the events stream position up to which push actions were counted
	// (notifications.go).
	Notifications int64
	// Presence is the position of presence changes (presence_state.go); 0 while presence is off.
	Presence int64
}

func (t SyncToken) String() string {
	s := fmt.Sprintf("s%d_%d_%d_%d_%d_%d_%d", t.Events, t.AccountData, t.ToDevice, t.DeviceLists, t.Receipts, t.Typing, t.Notifications)
	if t.Presence != 0 {
		s += "_" + strconv.FormatInt(t.Presence, 10)
	}
	return s
}

// ParseSyncToken decodes a /sync token. A bare "s{n}" (a room token) is accepted as a token
// with only an events position, which re-sends the other streams from the start.
func ParseSyncToken(s string) (SyncToken, error) {
	if !strings.HasPrefix(s, "s") {
		return SyncToken{}, fmt.Errorf("%w: %q", errBadToken, s)
	}
	parts := strings.Split(s[1:], "_")
	if len(parts) > 8 {
		return SyncToken{}, fmt.Errorf("%w: %q", errBadToken, s)
	}
	var v [8]int64
	for i, p := range parts {
		n, err := strconv.ParseInt(p, 10, 64)
		if err != nil || n < 0 {
			return SyncToken{}, fmt.Errorf("%w: %q", errBadToken, s)
		}
		v[i] = n
	}
	return SyncToken{Events: v[0], AccountData: v[1], ToDevice: v[2], DeviceLists: v[3], Receipts: v[4], Typing: v[5], Notifications: v[6], Presence: v[7]}, nil
}

// after reports whether any stream of t is past the same stream of u.
func (t SyncToken) after(u SyncToken) bool {
	return t.Events > u.Events || t.AccountData > u.AccountData || t.ToDevice > u.ToDevice ||
		t.DeviceLists > u.DeviceLists || t.Receipts > u.Receipts || t.Typing > u.Typing || t.Notifications > u.Notifications ||
		t.Presence > u.Presence
}
