package federation

import (
	"context"
	"encoding/json"
	"fmt"

	"myelin/storage"
)

// addsTargetServer reports whether a membership event goes to its target's server although no
// member of that server is joined to the room: yes for a kick, ban or leave (the target may have
// been its server's last member, which must learn that it is out), no for an invite. An invite
// has already reached the invitee's server through the invite API (PUT /invite, which is how
// that server got the right to see it); sent again in a transaction to a server that is not in
// the room, it is an event whose prev_events that server may not fetch, so it drops it after
// failed /get_missing_events and /event_auth calls (Dendrite logs "dropping this event").
// Synapse likewise sends an event only to the servers in the room before it.
func addsTargetServer(ctx context.Context, r storage.Reader, rec storage.EventRecord) (bool, error) {
	body := rec.JSON
	if body == nil {
		// The sender's stream read carries headers only.
		full, err := storage.EventByID(ctx, r, rec.EventID)
		if err != nil {
			return false, fmt.Errorf("federation: reading membership event %s: %w", rec.EventID, err)
		}
		body = full.JSON
	}
	var ev struct {
		Content struct {
			Membership string `json:"membership"`
		} `json:"content"`
	}
	if body != nil {
		if err := json.Unmarshal(body, &ev); err != nil {
			return false, fmt.Errorf("federation: membership event %s: %w", rec.EventID, err)
		}
	}
	return ev.Content.Membership != "invite", nil
}
