package clientapi

import (
	"context"
	"slices"

	"myelin/keys/e2e"
	"myelin/roomserver"
)

// Device list tracking across membership changes (client-server API, "Tracking the device list
// for a user"): besides users whose keys changed (the key store's device_lists stream), a
// client must hear of a user who now shares a room with it, in changed, since their devices
// may have changed while no room was shared; and of one with whom it no longer shares any
// room, in left, to stop tracking them. Both follow from the membership changes of the sync's
// range of the events stream. As the spec allows, a user who shares a new room is in changed
// even when another room was shared already. Rooms count whether encrypted or not, as Synapse
// does: a room may turn encryption on at any time, and the client tracks only whom it wants.

// sharedMembership is what device list tracking needs from the room server.
type sharedMembership interface {
	SharedRoomUsers(ctx context.Context, userID string) ([]string, error)
	SharedMembershipChanges(ctx context.Context, userID string, from, to int64) ([]roomserver.SharedMembershipChange, error)
}

// addMembershipDeviceLists merges into resp.device_lists the users who started or stopped
// sharing a room with the user in (from, to] of the events stream.
func (h *syncHandlers) addMembershipDeviceLists(ctx context.Context, userID string, from, to int64, resp *syncResponse) error {
	src, ok := h.cfg.Rooms.(sharedMembership)
	if !ok || to <= from {
		return nil
	}
	changes, err := src.SharedMembershipChanges(ctx, userID, from, to)
	if err != nil || len(changes) == 0 {
		return err
	}
	joinedNow := map[string]bool{} // candidates for changed
	gone := map[string]bool{}      // candidates for left
	for _, c := range changes {
		ownJoined := c.Own == "join"
		ownGone := c.OwnChanged && (c.Own == "leave" || c.Own == "ban")
		switch {
		case ownJoined && c.Membership == "join" && (c.Changed || c.OwnChanged):
			joinedNow[c.UserID] = true
		case ownGone && c.Membership == "join",
			ownJoined && c.Changed && (c.Membership == "leave" || c.Membership == "ban"):
			gone[c.UserID] = true
		}
	}
	if len(joinedNow) == 0 && len(gone) == 0 {
		return nil
	}
	shared, err := src.SharedRoomUsers(ctx, userID)
	if err != nil {
		return err
	}
	sharing := make(map[string]bool, len(shared))
	for _, u := range shared {
		sharing[u] = true
	}
	dl := resp.DeviceLists
	if dl == nil {
		dl = &e2e.DeviceListChanges{Changed: []string{}, Left: []string{}}
	}
	for u := range joinedNow {
		if sharing[u] && !slices.Contains(dl.Changed, u) {
			dl.Changed = append(dl.Changed, u)
		}
	}
	for u := range gone {
		if !sharing[u] && !slices.Contains(dl.Left, u) {
			dl.Left = append(dl.Left, u)
		}
	}
	// A user with whom nothing is shared any more is left, whatever their keys did.
	dl.Changed = slices.DeleteFunc(dl.Changed, func(u string) bool { return slices.Contains(dl.Left, u) })
	slices.Sort(dl.Changed)
	slices.Sort(dl.Left)
	if len(dl.Changed) > 0 || len(dl.Left) > 0 {
		resp.DeviceLists = dl
	}
	return nil
}
