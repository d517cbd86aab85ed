package clientapi

import (
	"encoding/json"
	"time"

	"myelin/roomserver/event"
)

// ClientEvent is an event as the Client-Server API returns it (ClientEvent and, without
// room_id, ClientEventWithoutRoomID of the spec). The PDU's own fields (signatures, hashes,
// auth and prev events, depth) stay on the server.
type ClientEvent struct {
	Content        json.RawMessage `json:"content"`
	EventID        string          `json:"event_id"`
	OriginServerTS int64           `json:"origin_server_ts"`
	RoomID         string          `json:"room_id,omitempty"`
	Sender         string          `json:"sender"`
	StateKey       *string         `json:"state_key,omitempty"`
	Type           string          `json:"type"`
	// Redacts is the redacted event of an m.room.redaction. From room version 11 the event
	// carries it in content, where it stays; it is repeated here for clients written before.
	Redacts  string          `json:"redacts,omitempty"`
	Unsigned *ClientUnsigned `json:"unsigned,omitempty"`
	// source is the event as stored (redacted when it was), for a filter's event_format
	// "federation" (sync_eventshape.go); never marshalled.
	source *event.Event
}

// ClientUnsigned is the "unsigned" object of a ClientEvent: what the local server adds.
type ClientUnsigned struct {
	Age             int64           `json:"age"`
	PrevContent     json.RawMessage `json:"prev_content,omitempty"`
	PrevSender      string          `json:"prev_sender,omitempty"`
	ReplacesState   string          `json:"replaces_state,omitempty"`
	TransactionID   string          `json:"transaction_id,omitempty"`
	RedactedBecause *ClientEvent    `json:"redacted_because,omitempty"`
	Membership      string          `json:"membership,omitempty"`
	// Relations is the bundled aggregation of the event's children (aggregations.go).
	Relations *BundledRelations `json:"m.relations,omitempty"`
}

// EventFormat selects between the two shapes of the spec.
type EventFormat int

const (
	// FormatClient is ClientEvent, with room_id.
	FormatClient EventFormat = iota
	// FormatSync is ClientEventWithoutRoomID, used inside /sync where the room is the key.
	FormatSync
)

// ClientEventOptions are what the caller knows beyond the event itself. The zero value gives
// the bare event with its age.
type ClientEventOptions struct {
	// Replaced is the state event this state event replaced. Its id is always shown as
	// replaces_state; its content and sender only when PrevVisible (the requester may see it).
	Replaced    *event.Event
	PrevVisible bool
	// TransactionID is set when the requesting device sent the event.
	TransactionID string
	// RedactedBy is the m.room.redaction that redacted this event: the content is then
	// stripped by the room version's redaction algorithm and the redaction is attached.
	RedactedBy *event.Event
	// Membership is the requester's membership at the event (unsigned.membership), if known.
	Membership string
}

// ToClientEvent formats ev for a client at time now.
func ToClientEvent(ev *event.Event, format EventFormat, now time.Time, opt ClientEventOptions) ClientEvent {
	ce := ClientEvent{
		Content:        ev.Content(),
		EventID:        ev.ID(),
		OriginServerTS: ev.OriginServerTS(),
		Sender:         ev.Sender(),
		StateKey:       ev.StateKey(),
		Type:           ev.Type(),
		Redacts:        ev.Redacts(),
		source:         ev,
		Unsigned: &ClientUnsigned{
			Age:           now.UnixMilli() - ev.OriginServerTS(),
			TransactionID: opt.TransactionID,
			Membership:    opt.Membership,
		},
	}
	if len(ce.Content) == 0 {
		ce.Content = json.RawMessage("{}")
	}
	if format == FormatClient {
		ce.RoomID = ev.RoomID()
	}
	if ev.IsState() && opt.Replaced != nil {
		ce.Unsigned.ReplacesState = opt.Replaced.ID()
		if opt.PrevVisible {
			ce.Unsigned.PrevContent = opt.Replaced.Content()
			ce.Unsigned.PrevSender = opt.Replaced.Sender()
		}
	}
	if opt.RedactedBy != nil {
		if red, err := ev.Redacted(); err == nil {
			ce.source = red
			ce.Content = red.Content()
			if len(ce.Content) == 0 {
				ce.Content = json.RawMessage("{}")
			}
		} else {
			// An event that cannot be redacted by its own rules shows no content at all,
			// rather than the content its redaction asked to hide; nor a federation form.
			ce.Content = json.RawMessage("{}")
			ce.source = nil
		}
		// A redacted redaction points nowhere.
		if ev.Type() == "m.room.redaction" {
			ce.Redacts = ""
		}
		because := ToClientEvent(opt.RedactedBy, format, now, ClientEventOptions{})
		ce.Unsigned.RedactedBecause = &because
	}
	return ce
}

// ToClientEvents formats events without options, as state lists and stripped state need.
func ToClientEvents(evs []*event.Event, format EventFormat, now time.Time) []ClientEvent {
	out := make([]ClientEvent, 0, len(evs))
	for _, ev := range evs {
		out = append(out, ToClientEvent(ev, format, now, ClientEventOptions{}))
	}
	return out
}

// StrippedStateEvent is an event of the stripped state shown with invites and knocks.
type StrippedStateEvent struct {
	Content  json.RawMessage `json:"content"`
	Sender   string          `json:"sender"`
	StateKey string          `json:"state_key"`
	Type     string          `json:"type"`
}

// ToStrippedState strips state events to the four fields that invitees may see.
func ToStrippedState(evs []*event.Event) []StrippedStateEvent {
	out := make([]StrippedStateEvent, 0, len(evs))
	for _, ev := range evs {
		sk := ""
		if ev.StateKey() != nil {
			sk = *ev.StateKey()
		}
		out = append(out, StrippedStateEvent{Content: ev.Content(), Sender: ev.Sender(), StateKey: sk, Type: ev.Type()})
	}
	return out
}
