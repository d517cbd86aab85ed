package clientapi

import (
	"context"
	"slices"

	"myelin/storage"
)

// The room summary of a sync (m.heroes, m.joined_member_count, m.invited_member_count) is
// that of the state the sync returns: the state at the end of the timeline, at the position
// the sync answers up to, not the room as it is when the summary is read. Events may enter
// the room between the moment a sync fixes its position and the moment it reads a room;
// their memberships (the memberships table holds only the latest) are replaced by what the
// state at the end of the timeline says, so that the counts match the state and timeline
// sent, and the next sync, which carries those events, reports the change.

// summary is the room summary at stream position upto, whose state is w.endSnap.
func (h *syncHandlers) summary(ctx context.Context, ur storage.UserRoom, userID string, w *roomWindow, upto int64) (*roomSummary, error) {
	// The current counts and the memberships changed since upto are read from one snapshot: a
	// join committed between two separate reads would be taken off counts that never had it.
	var (
		counts  map[string]int
		changed []storage.Membership
	)
	err := h.db.WithReadTx(ctx, func(r storage.Reader) error {
		var err error
		if counts, err = storage.RoomMemberCounts(ctx, r, ur.Room); err != nil {
			return err
		}
		changed, err = storage.MembershipsChangedAfter(ctx, r, ur.Room, upto)
		return err
	})
	if err != nil {
		return nil, err
	}
	past, err := h.membershipsAt(ctx, ur, w, changed, counts)
	if err != nil {
		return nil, err
	}
	heroes, err := h.heroesAt(ctx, ur, userID, upto, past, []string{"join", "invite"})
	if err != nil {
		return nil, err
	}
	if len(heroes) == 0 {
		if heroes, err = h.heroesAt(ctx, ur, userID, upto, past, []string{"leave", "ban"}); err != nil {
			return nil, err
		}
	}
	if heroes == nil {
		heroes = []string{}
	}
	return &roomSummary{Heroes: heroes, JoinedMemberCount: counts["join"], InvitedMemberCount: counts["invite"]}, nil
}

// membershipsAt reads the memberships changed after upto (changed) as they were at upto (from
// the state w.endSnap), corrects counts (the current counts, read with changed) by them, and
// returns them by user, with the position of the membership event that set each. A user who
// had no membership at upto is returned with an empty one.
func (h *syncHandlers) membershipsAt(ctx context.Context, ur storage.UserRoom, w *roomWindow, changed []storage.Membership, counts map[string]int) (map[string]storage.Membership, error) {
	if len(changed) == 0 {
		return nil, nil
	}
	past := make(map[string]storage.Membership, len(changed))
	users := make([]string, 0, len(changed))
	for _, m := range changed {
		counts[m.Membership]--
		past[m.UserID] = storage.Membership{Room: ur.Room, UserID: m.UserID}
		users = append(users, m.UserID)
	}
	if w.endSnap == 0 {
		return past, nil
	}
	keys, err := h.memberKeys(ctx, users)
	if err != nil || len(keys) == 0 {
		return past, err
	}
	entries, err := storage.SnapshotLookup(ctx, h.db, w.endSnap, keys)
	if err != nil || len(entries) == 0 {
		return past, err
	}
	nids := make([]storage.EventNID, len(entries))
	for i, e := range entries {
		nids[i] = e.Event
	}
	recs, err := storage.EventsByNID(ctx, h.db, nids)
	if err != nil {
		return nil, err
	}
	for _, rec := range recs {
		evs := parseRecords([]storage.EventRecord{rec}, w.version)
		if len(evs) != 1 || evs[0].StateKey() == nil {
			continue
		}
		m, err := evs[0].Membership()
		if err != nil {
			continue
		}
		counts[m]++
		past[*evs[0].StateKey()] = storage.Membership{Room: ur.Room, UserID: *evs[0].StateKey(), Membership: m, Event: rec.NID, StreamPos: rec.StreamPos}
	}
	return past, nil
}

// heroesAt returns up to maxSyncHeroes users other than userID whose membership at upto is
// one of memberships, in the order of their membership events.
func (h *syncHandlers) heroesAt(ctx context.Context, ur storage.UserRoom, userID string, upto int64, past map[string]storage.Membership, memberships []string) ([]string, error) {
	cands, err := storage.RoomHeroesUpTo(ctx, h.db, ur.Room, userID, memberships, maxSyncHeroes, upto)
	if err != nil {
		return nil, err
	}
	for u, m := range past {
		if u != userID && slices.Contains(memberships, m.Membership) {
			cands = append(cands, m)
		}
	}
	slices.SortStableFunc(cands, func(a, b storage.Membership) int {
		switch {
		case a.StreamPos < b.StreamPos:
			return -1
		case a.StreamPos > b.StreamPos:
			return 1
		}
		return 0
	})
	var out []string
	for _, m := range cands[:min(len(cands), maxSyncHeroes)] {
		out = append(out, m.UserID)
	}
	return out, nil
}
