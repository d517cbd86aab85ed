package clientapi

import (
	"context"
	"encoding/json"

	"myelin/roomserver"
	"myelin/roomserver/event"
)

// Invites of our users to rooms this server is not in arrive over federation (PUT /invite) and
// are kept by the room server apart from its rooms, with the stripped state the inviting server
// sent, until the user joins or rejects them. /sync shows them in rooms.invite like any invite.

// remoteInviteSource is the room server's list of pending remote invites; a Rooms without it
// (tests) has none.
type remoteInviteSource interface {
	RemoteInvites(ctx context.Context, userID string, from, to int64) ([]roomserver.RemoteInvite, error)
}

// addRemoteInvites adds the remote invites received in (from, to] of the events stream to
// rooms.invite, unless the room already has a section (a local membership, which is newer
// news).
func (h *syncHandlers) addRemoteInvites(ctx context.Context, who Requester, from, to int64, req syncRequest, resp *syncResponse) error {
	src, ok := h.cfg.Rooms.(remoteInviteSource)
	if !ok || to <= from {
		return nil
	}
	invites, err := src.RemoteInvites(ctx, who.UserID, from, to)
	if err != nil {
		return err
	}
	ignored, err := roomserver.IgnoredUsers(ctx, h.db, who.UserID)
	if err != nil {
		return err
	}
	for _, inv := range invites {
		if ignored[inv.Event.Sender()] || !req.filter.Room.AllowsRoom(inv.RoomID) || resp.Rooms.Join[inv.RoomID] != nil ||
			resp.Rooms.Leave[inv.RoomID] != nil || resp.Rooms.Knock[inv.RoomID] != nil {
			continue
		}
		stripped := strippedInviteState(inv.InviteState, inv.RoomID)
		stripped = append(stripped, ToStrippedState([]*event.Event{inv.Event})...)
		resp.Rooms.Invite[inv.RoomID] = &invitedRoom{InviteState: strippedState{Events: stripped}}
	}
	return nil
}

// strippedInviteState reads the invite_room_state another server sent: full PDUs (as the spec
// asks since v1.16) or already stripped events, of which clients are shown only the four
// stripped fields. Entries that are not state events are left out: the list comes from another
// server and only describes the room, so a bad entry costs the invitee a detail, not the invite.
func strippedInviteState(raw json.RawMessage, roomID string) []StrippedStateEvent {
	var entries []struct {
		StrippedStateEvent
		StateKey *string `json:"state_key"`
		RoomID   string  `json:"room_id"`
	}
	if json.Unmarshal(raw, &entries) != nil {
		return []StrippedStateEvent{}
	}
	out := make([]StrippedStateEvent, 0, len(entries))
	for _, e := range entries {
		if e.Type == "" || e.StateKey == nil || (e.RoomID != "" && e.RoomID != roomID) || !isJSONObject(e.Content) {
			continue
		}
		e.StrippedStateEvent.StateKey = *e.StateKey
		out = append(out, e.StrippedStateEvent)
	}
	return out
}

func isJSONObject(raw json.RawMessage) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal(raw, &m) == nil && m != nil
}
