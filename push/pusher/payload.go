package pusher

import (
	"encoding/json"

	"myelin/roomserver/event"
	"myelin/storage"
)

// What a push gateway learns (push gateway API, POST /_matrix/push/v1/notify).
//
// A push gateway is run by the app's developer and hands the notification to Apple's or
// Google's push service, so whatever it carries leaves the homeserver's control. What counts
// as content, and is left out unless push.include_content is on:
//   - content: the message itself;
//   - sender_display_name, room_name, room_alias: text people chose that says who talks and
//     about what ("Mum", "Divorce lawyers");
//   - sender: the user id of the person writing, which tells the push service who talks to
//     whom.
//
// What is always sent, because the app needs it to fetch the event itself over the
// Client-Server API and to show the right kind of alert: event_id, room_id (opaque ids),
// type (whether it is a message, an encrypted message or a call), user_is_target, prio,
// counts and devices. With the pusher's format "event_id_only" only event_id, room_id,
// counts, devices and prio are sent, whatever the configuration.

// notifyRequest is the body of POST /_matrix/push/v1/notify.
type notifyRequest struct {
	Notification notification `json:"notification"`
}

type notification struct {
	EventID           string          `json:"event_id,omitempty"`
	RoomID            string          `json:"room_id,omitempty"`
	Type              string          `json:"type,omitempty"`
	Sender            string          `json:"sender,omitempty"`
	SenderDisplayName string          `json:"sender_display_name,omitempty"`
	RoomName          string          `json:"room_name,omitempty"`
	RoomAlias         string          `json:"room_alias,omitempty"`
	UserIsTarget      bool            `json:"user_is_target,omitempty"`
	Prio              string          `json:"prio,omitempty"`
	Content           json.RawMessage `json:"content,omitempty"`
	Counts            counts          `json:"counts"`
	Devices           []device        `json:"devices"`
}

// counts leaves out zero values, as the spec asks.
type counts struct {
	Unread      int `json:"unread,omitempty"`
	MissedCalls int `json:"missed_calls,omitempty"`
}

type device struct {
	AppID     string         `json:"app_id"`
	PushKey   string         `json:"pushkey"`
	PushKeyTS int64          `json:"pushkey_ts"`
	Data      map[string]any `json:"data,omitempty"`
	Tweaks    map[string]any `json:"tweaks,omitempty"`
}

// eventInfo is what the payload may say of the event and its room.
type eventInfo struct {
	ev                *event.Event
	senderDisplayName string
	roomName          string
	roomAlias         string
}

// buildNotification builds the notification of act for pusher p.
func buildNotification(p storage.Pusher, act storage.PushAction, info eventInfo, unread int, includeContent bool) notifyRequest {
	tweaks := tweaksOf(act.Actions)
	n := notification{
		EventID: act.EventID,
		RoomID:  act.RoomID,
		Prio:    "low",
		Counts:  counts{Unread: unread},
		Devices: []device{{
			AppID: p.AppID, PushKey: p.PushKey, PushKeyTS: p.PushKeyTS / 1000,
			Data: dataWithoutURL(p.Data), Tweaks: tweaks,
		}},
	}
	ev := info.ev
	// As Synapse does: what rings or highlights, and what the server cannot read, is urgent.
	if _, sound := tweaks["sound"]; sound || tweaks["highlight"] == true || ev != nil && ev.Type() == "m.room.encrypted" {
		n.Prio = "high"
	}
	if format(p.Data) == "event_id_only" || ev == nil {
		return notifyRequest{Notification: n}
	}
	n.Type = ev.Type()
	n.UserIsTarget = ev.StateKey() != nil && *ev.StateKey() == p.UserID
	if includeContent {
		n.Sender = ev.Sender()
		n.SenderDisplayName = info.senderDisplayName
		n.RoomName = info.roomName
		n.RoomAlias = info.roomAlias
		if c := ev.Content(); len(c) > 0 {
			n.Content = c
		}
	}
	return notifyRequest{Notification: n}
}

// tweaksOf collects the set_tweak actions; a highlight tweak without a value is true.
func tweaksOf(actions json.RawMessage) map[string]any {
	var list []json.RawMessage
	if json.Unmarshal(actions, &list) != nil {
		return nil
	}
	out := map[string]any{}
	for _, a := range list {
		var t struct {
			SetTweak string          `json:"set_tweak"`
			Value    json.RawMessage `json:"value"`
		}
		if json.Unmarshal(a, &t) != nil || t.SetTweak == "" {
			continue
		}
		var v any = true
		if len(t.Value) > 0 {
			if json.Unmarshal(t.Value, &v) != nil {
				continue
			}
		}
		out[t.SetTweak] = v
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// dataWithoutURL is the pusher's data as the gateway gets it: everything but url.
func dataWithoutURL(raw json.RawMessage) map[string]any {
	var data map[string]any
	if json.Unmarshal(raw, &data) != nil {
		return nil
	}
	delete(data, "url")
	if len(data) == 0 {
		return nil
	}
	return data
}

func format(raw json.RawMessage) string {
	var d struct {
		Format string `json:"format"`
	}
	_ = json.Unmarshal(raw, &d)
	return d.Format
}

func gatewayURL(raw json.RawMessage) string {
	var d struct {
		URL string `json:"url"`
	}
	_ = json.Unmarshal(raw, &d)
	return d.URL
}
