package federation

import (
	"context"
	"encoding/json"
	"fmt"
)

// The m.presence EDU (server-server API "Presence"). It has a handler only when presence is
// enabled (presence.enabled; cmd/myelin wires PresenceEDU then), so that a server with
// presence off takes none. Each update must be about a user of the origin; whether the user
// shares a room with a user of this server is the sink's to check. Updates of other users,
// and malformed ones, are skipped without dropping the rest of the push list.

// PresenceSink takes the presence of remote users; clientapi's Ephemeral is one.
type PresenceSink interface {
	// RemotePresence records a user's presence; lastActiveAgo is -1 when the EDU has none.
	RemotePresence(ctx context.Context, userID, presence string, statusMsg *string, lastActiveAgo int64, currentlyActive bool) error
}

// maxStatusMsgLength bounds a remote status message, in bytes; longer ones are cut.
const maxStatusMsgLength = 1024

// PresenceEDU handles m.presence.
func PresenceEDU(sink PresenceSink) EDUHandlerFunc {
	return func(ctx context.Context, origin string, content json.RawMessage) error {
		var c struct {
			Push []json.RawMessage `json:"push"`
		}
		if err := json.Unmarshal(content, &c); err != nil {
			return fmt.Errorf("malformed m.presence EDU: %w", err)
		}
		var firstErr error
		for _, raw := range c.Push {
			var u struct {
				UserID          string  `json:"user_id"`
				Presence        string  `json:"presence"`
				StatusMsg       *string `json:"status_msg"`
				LastActiveAgo   *int64  `json:"last_active_ago"`
				CurrentlyActive bool    `json:"currently_active"`
			}
			if json.Unmarshal(raw, &u) != nil || serverOf(u.UserID) != origin {
				continue
			}
			switch u.Presence {
			case "online", "offline", "unavailable":
			default:
				continue
			}
			ago := int64(-1)
			if u.LastActiveAgo != nil && *u.LastActiveAgo >= 0 {
				ago = *u.LastActiveAgo
			}
			if u.StatusMsg != nil && len(*u.StatusMsg) > maxStatusMsgLength {
				cut := truncateUTF8(*u.StatusMsg, maxStatusMsgLength)
				u.StatusMsg = &cut
			}
			err := sink.RemotePresence(ctx, u.UserID, u.Presence, u.StatusMsg, ago, u.CurrentlyActive)
			if err != nil && firstErr == nil {
				firstErr = err
			}
		}
		return firstErr
	}
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
