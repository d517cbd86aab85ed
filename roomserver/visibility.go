package roomserver

import (
	"context"
	"encoding/json"

	"myelin/roomserver/auth"
	"myelin/roomserver/event"
	"myelin/storage"
)

// History visibility values (client-server API, "Room History Visibility").
const (
	VisibilityWorldReadable = "world_readable"
	VisibilityShared        = "shared"
	VisibilityInvited       = "invited"
	VisibilityJoined        = "joined"
)

const typeHistoryVisibility = "m.room.history_visibility"

// VisibleEvents returns the events among evs that userID may see, in their order, by the rules
// of the spec's "Room History Visibility" section, applied with the room state at each event:
//
//  1. world_readable: allow;
//  2. the user's membership was join: allow;
//  3. shared, and the user joined the room at some point after the event: allow;
//  4. invited, and the user's membership was invite: allow;
//  5. otherwise deny.
//
// For m.room.history_visibility events the visibility before or after the event may allow, and
// for the user's own membership events the membership before or after. Events this server does
// not store, or whose state it does not know, are not visible. Every read path that returns
// events to a user goes through here.
func (s *Server) VisibleEvents(ctx context.Context, userID string, evs []*event.Event) ([]*event.Event, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	ids := make([]string, len(evs))
	for i, ev := range evs {
		ids[i] = ev.ID()
	}
	var out []*event.Event
	err := s.db.WithReadTx(ctx, func(r storage.Reader) error {
		recs, err := storage.EventsByID(ctx, r, ids)
		if err != nil {
			return err
		}
		byID := make(map[string]storage.EventRecord, len(recs))
		for _, rec := range recs {
			byID[rec.EventID] = rec
		}
		types, err := storage.LookupTypeNIDs(ctx, r, []string{typeHistoryVisibility, auth.TypeMember})
		if err != nil {
			return err
		}
		stateKeys, err := storage.LookupStateKeyNIDs(ctx, r, []string{"", userID})
		if err != nil {
			return err
		}
		var keys []storage.StateKey
		hvKey, hasHV := stateKey(types, stateKeys, typeHistoryVisibility, "")
		memKey, hasMem := stateKey(types, stateKeys, auth.TypeMember, userID)
		if hasHV {
			keys = append(keys, hvKey)
		}
		if hasMem {
			keys = append(keys, memKey)
		}

		type atState struct{ visibility, membership string }
		bySnapshot := map[storage.SnapshotNID]atState{}
		stateAt := func(snap storage.SnapshotNID) (atState, error) {
			if st, ok := bySnapshot[snap]; ok {
				return st, nil
			}
			st := atState{visibility: VisibilityShared}
			entries, err := storage.SnapshotLookup(ctx, r, snap, keys)
			if err != nil {
				return st, err
			}
			nids := make([]storage.EventNID, len(entries))
			for i, e := range entries {
				nids[i] = e.Event
			}
			stateRecs, err := storage.EventsByNID(ctx, r, nids)
			if err != nil {
				return st, err
			}
			for _, rec := range stateRecs {
				switch rec.Type {
				case typeHistoryVisibility:
					st.visibility = historyVisibility(rec.JSON)
				case auth.TypeMember:
					st.membership = membershipOfJSON(rec.JSON)
				}
			}
			bySnapshot[snap] = st
			return st, nil
		}
		joinPos := map[storage.RoomNID]int64{}
		latestJoin := func(room storage.RoomNID) (int64, error) {
			if p, ok := joinPos[room]; ok {
				return p, nil
			}
			m, err := storage.GetMembership(ctx, r, room, userID)
			if err != nil && !isNotFound(err) {
				return 0, err
			}
			joinPos[room] = m.JoinPos
			return m.JoinPos, nil
		}

		for _, ev := range evs {
			rec, ok := byID[ev.ID()]
			if !ok || rec.Outlier || rec.Rejected {
				continue
			}
			before, err := stateAt(rec.StateBefore)
			if err != nil {
				return err
			}
			// The state after the event differs from the state before only where the event
			// itself sets what the rules read.
			after := before
			if ev.Type() == typeHistoryVisibility && ev.StateKeyEquals("") {
				after.visibility = historyVisibility(ev.JSON())
			}
			isOwnMember := ev.Type() == auth.TypeMember && ev.StateKeyEquals(userID)
			if isOwnMember {
				after.membership, _ = ev.Membership()
			}
			allowed := func(st atState) (bool, error) {
				switch {
				case st.visibility == VisibilityWorldReadable:
					return true, nil
				case st.membership == "join":
					return true, nil
				case st.visibility == VisibilityShared:
					p, err := latestJoin(rec.Room)
					return p > 0 && p > rec.StreamPos && rec.StreamPos > 0, err
				case st.visibility == VisibilityInvited && st.membership == "invite":
					return true, nil
				}
				return false, nil
			}
			ok, err = allowed(before)
			if err != nil {
				return err
			}
			if !ok && (isOwnMember || ev.Type() == typeHistoryVisibility) {
				if ok, err = allowed(after); err != nil {
					return err
				}
			}
			if ok {
				out = append(out, ev)
			}
		}
		return nil
	})
	return out, err
}

func stateKey(types map[string]storage.TypeNID, keys map[string]storage.StateKeyNID, typ, sk string) (storage.StateKey, bool) {
	t, ok1 := types[typ]
	k, ok2 := keys[sk]
	return storage.StateKey{Type: t, StateKey: k}, ok1 && ok2
}

// historyVisibility reads an m.room.history_visibility event; a value the spec does not know
// counts as "shared", as the spec says.
func historyVisibility(raw []byte) string {
	var e struct {
		Content struct {
			HistoryVisibility string `json:"history_visibility"`
		} `json:"content"`
	}
	_ = json.Unmarshal(raw, &e)
	switch v := e.Content.HistoryVisibility; v {
	case VisibilityWorldReadable, VisibilityShared, VisibilityInvited, VisibilityJoined:
		return v
	}
	return VisibilityShared
}

func membershipOfJSON(raw []byte) string {
	var e struct {
		Content struct {
			Membership string `json:"membership"`
		} `json:"content"`
	}
	_ = json.Unmarshal(raw, &e)
	return e.Content.Membership
}
