package clientapi

// Ignored users' events are filtered by the room server's visibility rules (roomserver/ignore.go);
// what is left here are invites: an invite from an ignored user is never shown.

// invitedByIgnored reports whether the invite of userID, as the stripped state of the room
// shows it (the user's own m.room.member event), was sent by a user in ignored.
func invitedByIgnored(stripped []StrippedStateEvent, userID string, ignored map[string]bool) bool {
	if len(ignored) == 0 {
		return false
	}
	for _, ev := range stripped {
		if ev.Type == "m.room.member" && ev.StateKey == userID {
			return ignored[ev.Sender]
		}
	}
	return false
}
