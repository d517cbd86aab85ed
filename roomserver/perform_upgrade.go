package roomserver

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"myelin/roomserver/auth"
	"myelin/roomserver/event"
)

// upgradeTransferred are the state events copied into the replacement room, as the spec's
// "Room Upgrades" recommends. Power levels are carried separately.
var upgradeTransferred = []string{
	"m.room.server_acl", "m.room.encryption", "m.room.name", "m.room.avatar", "m.room.topic",
	"m.room.guest_access", "m.room.history_visibility", "m.room.join_rules",
}

// Upgrade replaces a room with a new one of version newVersion on behalf of sender: it creates
// the replacement room (predecessor, room type and transferable state copied), sends
// m.room.tombstone to the old room and then restricts the old room's power levels so that
// ordinary members can no longer talk or invite there. It returns the new room's id.
//
// additionalCreators (spec v1.16) become the new room's additional_creators when its version
// has privileged creators, and are ignored otherwise. The old room's additional creators are
// not carried over: the spec has the caller name the whole set again.
//
// The two rooms commit separately: if the tombstone is refused after the new room exists, the
// new room stays behind, unreferenced.
func (s *Server) Upgrade(ctx context.Context, roomID, sender, newVersion string, additionalCreators []string) (string, error) {
	v, err := event.Version(newVersion)
	if err != nil {
		return "", err
	}
	old, err := s.CurrentState(ctx, roomID)
	if err != nil {
		return "", err
	}
	byType := map[string]*event.Event{}
	var create, pl *event.Event
	for _, ev := range old {
		if ev.StateKeyEquals("") {
			byType[ev.Type()] = ev
		}
	}
	create, pl = byType[auth.TypeCreate], byType[auth.TypePowerLevels]
	levels, err := auth.NewPowerLevels(pl, create)
	if err != nil {
		return "", err
	}
	if levels.UserLevel(sender) < levels.EventLevel("m.room.tombstone", true) {
		return "", fmt.Errorf("%w: %s may not send m.room.tombstone", ErrNotAllowed, sender)
	}

	oldCreate, err := objectOf(create.Content())
	if err != nil {
		return "", err
	}
	predecessor := map[string]any{"room_id": roomID}
	if !v.RoomIDFromCreateEvent {
		if last, err := s.lastEventID(ctx, roomID); err == nil {
			predecessor["event_id"] = last
		}
	}
	creation := map[string]any{"predecessor": predecessor}
	if t, ok := oldCreate["type"]; ok {
		creation["type"] = t
	}
	var initial []StateEvent
	for _, typ := range upgradeTransferred {
		if ev := byType[typ]; ev != nil {
			initial = append(initial, StateEvent{Type: typ, Content: ev.Content()})
		}
	}
	plContent := map[string]any{}
	if pl != nil {
		if plContent, err = objectOf(pl.Content()); err != nil {
			return "", err
		}
	}
	if v.PrivilegedCreators {
		var extra []string
		for _, u := range additionalCreators {
			if u != sender && !slices.Contains(extra, u) {
				extra = append(extra, u)
			}
		}
		if len(extra) > 0 {
			creation["additional_creators"] = extra
		}
		// The new room's creators have infinite power and may not be listed among users.
		if users, ok := plContent["users"].(map[string]any); ok {
			delete(users, sender)
			for _, u := range extra {
				delete(users, u)
			}
		}
	} else if users, ok := plContent["users"].(map[string]any); ok {
		users[sender] = max(levels.UserLevel(sender), 100)
		if levels.UserLevel(sender) == auth.CreatorLevel {
			users[sender] = 100
		}
	} else {
		plContent["users"] = map[string]any{sender: 100}
	}
	newRoom, err := s.CreateRoom(ctx, CreateRoomRequest{
		Creator: sender, RoomVersion: v.ID, Preset: PresetPrivateChat,
		CreationContent: mustJSON(creation), PowerLevelContentOverride: mustJSON(plContent), InitialState: initial,
	})
	if err != nil {
		return "", err
	}

	if _, err := s.SendEvent(ctx, event.Proto{Type: "m.room.tombstone", StateKey: new(string), Sender: sender, RoomID: roomID,
		Content: mustJSON(map[string]any{"body": "This room has been replaced", "replacement_room": newRoom})}); err != nil {
		return "", err
	}
	// Restrict the old room: talking and inviting need more than the default user level.
	restricted := plContent
	if pl != nil {
		restricted, _ = objectOf(pl.Content())
	}
	needed := 50
	if ud, ok := restricted["users_default"].(json.Number); ok {
		if n, err := ud.Int64(); err == nil && n+1 > 50 {
			needed = int(n + 1)
		}
	}
	restricted["events_default"], restricted["invite"] = needed, needed
	if _, err := s.SendEvent(ctx, event.Proto{Type: auth.TypePowerLevels, StateKey: new(string), Sender: sender, RoomID: roomID,
		Content: mustJSON(restricted)}); err != nil {
		return "", fmt.Errorf("roomserver: restricting the old room's power levels: %w", err)
	}
	return newRoom, nil
}

// lastEventID is the newest forward extremity of a room.
func (s *Server) lastEventID(ctx context.Context, roomID string) (string, error) {
	var id string
	err := s.withRoom(ctx, roomID, func(w *roomWork) error {
		ext := sortedExtremities(w.extremities)
		if len(ext) == 0 {
			return fmt.Errorf("%w: room %s has no events", ErrNotFound, roomID)
		}
		id = ext[0].id
		return nil
	})
	return id, err
}
