package federation

import (
	"context"
	"encoding/json"
	"fmt"

	"myelin/storage"
)

// The EDUs of typing notifications and receipts (server-server API "Typing Notifications",
// "Receipts"). Server ACLs have been applied by processEDUs. Each user must belong to the
// origin; whether they are joined to the room is the sink's to check. Only m.read receipts are
// taken: private receipts never travel between servers, and one that arrives is ignored.

// EphemeralSink takes typing notifications and receipts of remote users; clientapi's
// Ephemeral is one.
type EphemeralSink interface {
	RemoteTyping(ctx context.Context, roomID, userID string, typing bool) error
	RemoteReceipt(ctx context.Context, rc storage.Receipt) error
}

// typingEDU handles m.typing.
func typingEDU(sink EphemeralSink) EDUHandlerFunc {
	return func(ctx context.Context, origin string, content json.RawMessage) error {
		var c struct {
			RoomID string `json:"room_id"`
			UserID string `json:"user_id"`
			Typing *bool  `json:"typing"`
		}
		if err := json.Unmarshal(content, &c); err != nil || c.RoomID == "" || c.Typing == nil {
			return fmt.Errorf("malformed m.typing EDU")
		}
		if serverOf(c.UserID) != origin {
			return fmt.Errorf("m.typing EDU for %s from %s", c.UserID, origin)
		}
		return sink.RemoteTyping(ctx, c.RoomID, c.UserID, *c.Typing)
	}
}

// receiptEDU handles m.receipt.
func receiptEDU(sink EphemeralSink) EDUHandlerFunc {
	return func(ctx context.Context, origin string, content json.RawMessage) error {
		var byRoom map[string]map[string]map[string]struct {
			EventIDs []string `json:"event_ids"`
			Data     struct {
				TS       int64  `json:"ts"`
				ThreadID string `json:"thread_id"`
			} `json:"data"`
		}
		if err := json.Unmarshal(content, &byRoom); err != nil {
			return fmt.Errorf("malformed m.receipt EDU: %w", err)
		}
		var firstErr error
		for roomID, byType := range byRoom {
			for userID, r := range byType["m.read"] {
				if serverOf(userID) != origin || len(r.EventIDs) == 0 {
					continue
				}
				err := sink.RemoteReceipt(ctx, storage.Receipt{
					RoomID: roomID, UserID: userID, Type: "m.read", ThreadID: r.Data.ThreadID,
					EventID: r.EventIDs[0], TS: r.Data.TS,
				})
				if err != nil && firstErr == nil {
					firstErr = err
				}
			}
		}
		return firstErr
	}
}
