package clientapi

import (
	"context"
	"sync"

	"myelin/roomserver/event"
)

// unsigned.membership (Client-Server API v1.11) is the requester's membership at each event
// they are shown. The room server learns it while it applies history visibility, from the
// same state lookups (Rooms.VisibleEventsWithMembership), so it costs no extra query. Read
// paths filter events in one place and format them in another (pages of /messages and
// /context, relations, threads, search, the /sync timeline), so instead of threading a map
// through each of them, the memberships found are kept for the rest of the request, and the
// formatters (clientEvents, timelineEvents) read them back. A user's membership at an event
// never changes, so whichever visibility check of the request found it, it is right.

type membershipMemoKey struct{}

// membershipMemo holds the requester's membership at the events the request has let them see.
type membershipMemo struct {
	userID string
	mu     sync.Mutex
	at     map[string]string
}

// withMembershipMemo gives the request of userID a place to keep memberships at events.
func withMembershipMemo(ctx context.Context, userID string) context.Context {
	return context.WithValue(ctx, membershipMemoKey{}, &membershipMemo{userID: userID, at: map[string]string{}})
}

// visibleEvents returns the events among evs that userID may see (Rooms.VisibleEvents) and
// remembers, for the request, userID's membership at each of them.
func visibleEvents(ctx context.Context, rooms Rooms, userID string, evs []*event.Event) ([]*event.Event, error) {
	memo, _ := ctx.Value(membershipMemoKey{}).(*membershipMemo)
	if memo == nil || memo.userID != userID {
		return rooms.VisibleEvents(ctx, userID, evs)
	}
	visible, at, err := rooms.VisibleEventsWithMembership(ctx, userID, evs)
	if err != nil {
		return nil, err
	}
	memo.mu.Lock()
	defer memo.mu.Unlock()
	for id, m := range at {
		memo.at[id] = m
	}
	return visible, nil
}

// membershipAt is the requester's membership at an event that a visibility check of this
// request let them see; "" (unsigned.membership left out, as the spec allows) otherwise.
func membershipAt(ctx context.Context, eventID string) string {
	memo, _ := ctx.Value(membershipMemoKey{}).(*membershipMemo)
	if memo == nil {
		return ""
	}
	memo.mu.Lock()
	defer memo.mu.Unlock()
	return memo.at[eventID]
}
