package roomserver

import (
	"context"
	"encoding/json"

	"myelin/roomserver/auth"
	"myelin/roomserver/event"
	"myelin/storage"
)

// Search keys of POST /search: the content fields server-side search looks in.
const (
	SearchKeyBody  = "content.body"
	SearchKeyName  = "content.name"
	SearchKeyTopic = "content.topic"
)

// indexSearch feeds the derived tables of server-side search and the user directory from an
// event stored as nid: its searchable text, the display name of a membership event, and
// whether a join rules or history visibility event lets anyone see the room's members (public,
// world readable). Called from indexEvent.
//
// Only content.body of m.room.message is indexed, not formatted_body: it is the same text with
// markup, and the markup's words (tag and attribute names) would match searches. An
// m.room.encrypted event has no plaintext and is never indexed; an event not on a timeline (an
// outlier, pos 0) cannot be a search result.
func indexSearch(ctx context.Context, tx *storage.Tx, room storage.RoomNID, ev *event.Event, nid storage.EventNID, pos int64) error {
	switch ev.Type() {
	case auth.TypeMember:
		var c struct {
			DisplayName string `json:"displayname"`
			AvatarURL   string `json:"avatar_url"`
		}
		if json.Unmarshal(ev.Content(), &c) != nil {
			return nil // a membership event with names of the wrong type is no directory entry
		}
		return tx.IndexMemberName(ctx, nid, c.DisplayName, c.AvatarURL)
	case auth.TypeJoinRules, typeHistoryVisibility:
		if !ev.StateKeyEquals("") {
			return nil
		}
		var c struct {
			JoinRule          string `json:"join_rule"`
			HistoryVisibility string `json:"history_visibility"`
		}
		if json.Unmarshal(ev.Content(), &c) != nil {
			return nil
		}
		if (ev.Type() == auth.TypeJoinRules && c.JoinRule == "public") ||
			(ev.Type() == typeHistoryVisibility && c.HistoryVisibility == VisibilityWorldReadable) {
			return tx.IndexPublicRoomState(ctx, nid)
		}
		return nil
	}
	if pos >= 0 {
		// Timeline events at positive positions are indexed by the search indexer
		// (search_indexer.go), outliers (0) never. Backfilled events (negative positions)
		// are behind the indexer and indexed now.
		return nil
	}
	key, text := searchText(ev.Type(), ev.StateKey(), ev.Content())
	if text == "" {
		return nil
	}
	return tx.IndexSearch(ctx, storage.SearchEntry{Event: nid, Room: room, Key: key, StreamPos: pos, Value: text})
}

// unindexSearch forgets what search and the directory hold of a redacted event.
func unindexSearch(ctx context.Context, tx *storage.Tx, nid storage.EventNID) error {
	return tx.UnindexSearch(ctx, nid)
}

// searchText returns the search key and text of an event of type typ with that state key and
// content, "" when it has none.
func searchText(typ string, stateKey *string, content json.RawMessage) (key, text string) {
	switch typ {
	case "m.room.message", "m.room.name", "m.room.topic":
	default:
		return "", ""
	}
	if len(content) == 0 {
		return "", ""
	}
	// Decode field by field: one field of an unexpected type must not hide the others.
	var raw map[string]json.RawMessage
	if json.Unmarshal(content, &raw) != nil {
		return "", ""
	}
	str := func(k string) string {
		var s string
		if json.Unmarshal(raw[k], &s) != nil {
			return ""
		}
		return s
	}
	isRoomState := stateKey != nil && *stateKey == ""
	switch typ {
	case "m.room.message":
		return SearchKeyBody, str("body")
	case "m.room.name":
		if isRoomState {
			return SearchKeyName, str("name")
		}
	case "m.room.topic":
		if !isRoomState {
			return "", ""
		}
		text := str("topic")
		var mTopic struct {
			Text []struct {
				MimeType string `json:"mimetype"`
				Body     string `json:"body"`
			} `json:"m.text"`
		}
		_ = json.Unmarshal(raw["m.topic"], &mTopic)
		for _, t := range mTopic.Text {
			if (t.MimeType == "" || t.MimeType == "text/plain") && t.Body != text {
				if text != "" {
					text += "\n"
				}
				text += t.Body
				break
			}
		}
		return SearchKeyTopic, text
	}
	return "", ""
}
