package clientapi

import (
	"context"
	"errors"
	"time"

	"myelin/mxhttp"
	"myelin/roomserver"
	"myelin/roomserver/event"
	"myelin/storage"
)

// Redacted events are stored redacted already (the room server prunes their body when the
// redaction takes effect), so every read returns the redacted content; what the client API
// adds is unsigned.redacted_because, and it withholds redactions that have not taken effect.

// redactionsOf returns the redaction of each redacted event among evs (event id ->
// m.room.redaction), in one lookup.
func (a *API) redactionsOf(ctx context.Context, evs []*event.Event) (map[string]*event.Event, error) {
	if len(evs) == 0 || a.cfg.Rooms == nil {
		return nil, nil
	}
	ids := make([]string, len(evs))
	for i, ev := range evs {
		ids[i] = ev.ID()
	}
	by, err := a.cfg.Rooms.RedactionsFor(ctx, ids)
	if err != nil {
		return nil, mxhttp.Internal(err)
	}
	return by, nil
}

// formatEvents is ToClientEvents with redacted_because on the redacted events, for state
// lists.
func (a *API) formatEvents(ctx context.Context, evs []*event.Event, format EventFormat, now time.Time) ([]ClientEvent, error) {
	by, err := a.redactionsOf(ctx, evs)
	if err != nil {
		return nil, err
	}
	out := make([]ClientEvent, 0, len(evs))
	for _, ev := range evs {
		out = append(out, ToClientEvent(ev, format, now, ClientEventOptions{RedactedBy: by[ev.ID()]}))
	}
	return out, nil
}

// withoutUnappliedRedactions drops the redactions among evs that have not taken effect (their
// target is not here yet, or they were not allowed to redact it): the spec has a server send a
// redaction to clients only once it would apply it.
func (a *API) withoutUnappliedRedactions(ctx context.Context, evs []*event.Event) ([]*event.Event, error) {
	var ids []string
	for _, ev := range evs {
		if ev.Type() == "m.room.redaction" {
			ids = append(ids, ev.ID())
		}
	}
	if len(ids) == 0 || a.cfg.Rooms == nil {
		return evs, nil
	}
	hidden, err := a.cfg.Rooms.UnappliedRedactions(ctx, ids)
	if err != nil {
		return nil, mxhttp.Internal(err)
	}
	if len(hidden) == 0 {
		return evs, nil
	}
	out := make([]*event.Event, 0, len(evs))
	for _, ev := range evs {
		if !hidden[ev.ID()] {
			out = append(out, ev)
		}
	}
	return out, nil
}

// checkSuspendedRedaction refuses (403 M_USER_SUSPENDED) a suspended user's redaction of
// another user's event: the spec lets a suspended account redact its own events, and lists
// redacting others' among the actions to forbid (client-server API "Account suspension").
// auth.go lets redactions through on the path alone; the target's sender is known only here.
// A target that is not found, or not in the room, is left to the room server's own answer.
func (a *API) checkSuspendedRedaction(ctx context.Context, who Requester, roomID, eventID string) error {
	restr, err := storage.GetAccountRestrictions(ctx, a.db, who.Localpart)
	if err != nil {
		return mxhttp.Internal(err)
	}
	if !restr.Suspended {
		return nil
	}
	target, err := a.cfg.Rooms.Event(ctx, eventID)
	if errors.Is(err, roomserver.ErrNotFound) {
		return nil
	}
	if err != nil {
		return mxhttp.Internal(err)
	}
	if target.RoomID() == roomID && target.Sender() != who.UserID {
		return userSuspended()
	}
	return nil
}
