package clientapi

import (
	"context"
	"encoding/json"

	"myelin/storage"
)

// The presence section of /sync (presence_state.go tracks it): m.presence events of the
// syncing user and of the users who share a room with them, changed after the token's
// presence position. An initial sync (or a token without a presence position) sends the
// users who are not offline, as Synapse does; an incremental one every change, offline
// included. The filter's presence EventFilter applies (types, senders, limit: the latest
// changes are kept).

// presenceEvent is an m.presence event as /sync carries it.
type presenceEvent struct {
	Type    string          `json:"type"`
	Sender  string          `json:"sender"`
	Content json.RawMessage `json:"content"`
}

// presenceEvents is the presence section of a /sync response.
type presenceEvents struct {
	Events []presenceEvent `json:"events"`
}

// syncPresence fills resp.Presence and records the presence position in to.
func (h *syncHandlers) syncPresence(ctx context.Context, who Requester, since SyncToken, to *SyncToken, resp *syncResponse, req syncRequest) error {
	if !h.presenceEnabled() {
		return nil
	}
	eph := h.cfg.Ephemeral
	to.Presence = eph.PresencePosition()
	from := since.Presence
	if from > to.Presence {
		from = 0 // a token from before a restart of another clock, or forged
	}
	if from == to.Presence {
		return nil
	}
	changes := eph.presenceSince(from, from > 0)
	var shared map[string]bool
	var out []presenceEvent
	now := h.now()
	for _, s := range changes {
		if !req.filter.Presence.AllowsEvent("m.presence", s.userID) {
			continue
		}
		if s.userID != who.UserID {
			if shared == nil {
				users, err := storage.JoinedCoMembers(ctx, h.db, who.UserID)
				if err != nil {
					return err
				}
				shared = make(map[string]bool, len(users))
				for _, u := range users {
					shared[u] = true
				}
			}
			if !shared[s.userID] {
				continue
			}
		}
		content, err := json.Marshal(presenceContent(s, now))
		if err != nil {
			return err
		}
		out = append(out, presenceEvent{Type: "m.presence", Sender: s.userID, Content: content})
	}
	if l := req.filter.Presence.Limit; l != nil && len(out) > *l {
		out = out[len(out)-*l:]
	}
	resp.Presence.Events = append(resp.Presence.Events, out...)
	return nil
}
