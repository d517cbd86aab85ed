package roomserver

import (
	"context"
	"errors"
	"fmt"

	"myelin/roomserver/auth"
	"myelin/roomserver/event"
	"myelin/storage"
)

// Redact sends an m.room.redaction of eventID on behalf of sender. From room version 3 the auth
// rules leave the "may this user redact that event" check to the servers that apply the
// redaction; this server applies it here: a user may redact their own events, and others' with
// the redact power level.
func (s *Server) Redact(ctx context.Context, roomID, sender, eventID, reason string) (*event.Event, error) {
	rec, err := storage.EventByID(ctx, s.db, eventID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: event %s", ErrNotFound, eventID)
	}
	if err != nil {
		return nil, err
	}
	var ev *event.Event
	err = s.withRoom(ctx, roomID, func(w *roomWork) error {
		if rec.Room != w.rs.nid {
			return fmt.Errorf("%w: event %s is not in %s", ErrNotFound, eventID, roomID)
		}
		if rec.Sender != sender {
			create, pl := w.get(createTuple), w.get(event.StateTuple{Type: auth.TypePowerLevels})
			if err := s.load(ctx, create, pl); err != nil {
				return err
			}
			var plEv *event.Event
			if pl != nil {
				plEv = pl.ev
			}
			levels, err := auth.NewPowerLevels(plEv, create.ev)
			if err != nil {
				return err
			}
			if levels.UserLevel(sender) < levels.RedactLevel() {
				return fmt.Errorf("%w: %s may not redact events of others", ErrNotAllowed, sender)
			}
		}
		content := map[string]any{}
		if reason != "" {
			content["reason"] = reason
		}
		var err error
		ev, err = s.addLocal(ctx, w, event.Proto{Type: auth.TypeRedaction, Sender: sender, Redacts: eventID, Content: mustJSON(content)})
		return err
	})
	return ev, err
}
