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

// historyState is what the history visibility rules read from the room state at an event: the
// room's history visibility and whether one of the viewer's users (the user, or any user of a
// server) is joined or invited.
type historyState struct {
	visibility      string
	joined, invited bool
	// membership is the viewer's membership when the viewer is one user ("" if they have none),
	// which VisibleEventsWithMembership returns as unsigned.membership.
	membership string
}

// A visibilityPolicy is the viewer's side of history visibility: whose memberships count and how
// an event is decided. visibleEvents does the rest, so users and servers share one mechanism.
type visibilityPolicy interface {
	// stateEvents picks from the state snapshot the m.room.history_visibility event and the
	// membership events of the viewer's users.
	stateEvents(ctx context.Context, r storage.Reader, snap storage.SnapshotNID) ([]storage.EventNID, error)
	// allow decides whether ev, stored as rec, is visible, given the state before it.
	allow(ctx context.Context, r storage.Reader, ev *event.Event, rec storage.EventRecord, before historyState) (bool, error)
}

// visibleEvents returns the events among evs that p allows, in their order. Events this server
// does not store, outliers and rejected events are never visible: it cannot vouch for their
// state. The state at each snapshot is read once per call.
func (s *Server) visibleEvents(ctx context.Context, evs []*event.Event, p visibilityPolicy) ([]*event.Event, error) {
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
		bySnap := map[storage.SnapshotNID]historyState{}
		for _, ev := range evs {
			rec, ok := byID[ev.ID()]
			if !ok || rec.Outlier || rec.Rejected {
				continue
			}
			before, ok := bySnap[rec.StateBefore]
			if !ok {
				if before, err = s.historyStateAt(ctx, r, rec.StateBefore, p); err != nil {
					return err
				}
				bySnap[rec.StateBefore] = before
			}
			ok, err := p.allow(ctx, r, ev, rec, before)
			if err != nil {
				return err
			}
			if ok {
				out = append(out, ev)
			}
		}
		return nil
	})
	return out, err
}

// maxHistoryStates bounds Server.histories; past it the cache starts over.
const maxHistoryStates = 50_000

// historyStateAt is the package's historyStateAt, kept for user viewers: a snapshot never
// changes once committed, and a redaction keeps both the history visibility and the
// membership of the events it reads, so a user's historyState at a snapshot is read once. A
// /sync read it for every new event's snapshot, two queries each (issue 9).
func (s *Server) historyStateAt(ctx context.Context, r storage.Reader, snap storage.SnapshotNID, p visibilityPolicy) (historyState, error) {
	u, isUser := p.(*userVisibility)
	if !isUser {
		return historyStateAt(ctx, r, snap, p)
	}
	key := historyKey{snap: snap, user: u.userID}
	s.histMu.Lock()
	st, ok := s.histories[key]
	s.histMu.Unlock()
	if ok {
		return st, nil
	}
	st, err := historyStateAt(ctx, r, snap, p)
	if err != nil {
		return st, err
	}
	s.histMu.Lock()
	if s.histories == nil || len(s.histories) >= maxHistoryStates {
		s.histories = map[historyKey]historyState{}
	}
	s.histories[key] = st
	s.histMu.Unlock()
	return st, nil
}

type historyKey struct {
	snap storage.SnapshotNID
	user string
}

// historyStateAt reads the state p cares about at a snapshot. With no history visibility event
// the room counts as "shared", as the spec says.
func historyStateAt(ctx context.Context, r storage.Reader, snap storage.SnapshotNID, p visibilityPolicy) (historyState, error) {
	st := historyState{visibility: VisibilityShared}
	nids, err := p.stateEvents(ctx, r, snap)
	if err != nil {
		return st, err
	}
	recs, err := storage.EventsByNID(ctx, r, nids)
	if err != nil {
		return st, err
	}
	for _, rec := range recs {
		switch rec.Type {
		case typeHistoryVisibility:
			st.visibility = historyVisibility(rec.JSON)
		case auth.TypeMember:
			st.membership = membershipOfJSON(rec.JSON)
			switch st.membership {
			case "join":
				st.joined = true
			case "invite":
				st.invited = true
			}
		}
	}
	return st, nil
}

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
//
// Non-state events sent by users that userID ignores are not visible either (ignore.go).
func (s *Server) VisibleEvents(ctx context.Context, userID string, evs []*event.Event) ([]*event.Event, error) {
	visible, _, err := s.visibleToUser(ctx, userID, evs, false)
	return visible, err
}

// VisibleEventsWithMembership is VisibleEvents that also returns, by event id, userID's
// membership at each visible event: the unsigned.membership of the Client-Server API, "the
// membership property of the requesting user's m.room.member state at the point of the event,
// including any changes caused by the event", and "leave" when they had no membership yet. It is
// read from the same state lookups that decide visibility, so it costs no extra query.
func (s *Server) VisibleEventsWithMembership(ctx context.Context, userID string, evs []*event.Event) ([]*event.Event, map[string]string, error) {
	return s.visibleToUser(ctx, userID, evs, true)
}

func (s *Server) visibleToUser(ctx context.Context, userID string, evs []*event.Event, withMembership bool) ([]*event.Event, map[string]string, error) {
	if len(evs) == 0 {
		return nil, nil, nil
	}
	ignored, err := IgnoredUsers(ctx, s.db, userID)
	if err != nil {
		return nil, nil, err
	}
	u := &userVisibility{userID: userID, ignored: ignored, joinPos: map[storage.RoomNID]int64{}}
	if withMembership {
		u.membershipAt = make(map[string]string, len(evs))
	}
	visible, err := s.visibleEvents(ctx, evs, u)
	if err != nil {
		return nil, nil, err
	}
	return visible, u.membershipAt, nil
}

// userVisibility is the visibility policy for one user.
type userVisibility struct {
	userID string
	// ignored are the users whose non-state events userID does not see.
	ignored map[string]bool
	// keys are the state keys of the history visibility and the user's membership, looked up on
	// first use; a key the server has never interned is left out.
	keys       []storage.StateKey
	keysLoaded bool
	joinPos    map[storage.RoomNID]int64
	// membershipAt, when not nil, collects the user's membership after each allowed event.
	membershipAt map[string]string
}

func (u *userVisibility) stateEvents(ctx context.Context, r storage.Reader, snap storage.SnapshotNID) ([]storage.EventNID, error) {
	if !u.keysLoaded {
		types, err := storage.LookupTypeNIDs(ctx, r, []string{typeHistoryVisibility, auth.TypeMember})
		if err != nil {
			return nil, err
		}
		stateKeys, err := storage.LookupStateKeyNIDs(ctx, r, []string{"", u.userID})
		if err != nil {
			return nil, err
		}
		if k, ok := stateKey(types, stateKeys, typeHistoryVisibility, ""); ok {
			u.keys = append(u.keys, k)
		}
		if k, ok := stateKey(types, stateKeys, auth.TypeMember, u.userID); ok {
			u.keys = append(u.keys, k)
		}
		u.keysLoaded = true
	}
	entries, err := storage.SnapshotLookup(ctx, r, snap, u.keys)
	if err != nil {
		return nil, err
	}
	nids := make([]storage.EventNID, len(entries))
	for i, e := range entries {
		nids[i] = e.Event
	}
	return nids, nil
}

func (u *userVisibility) allow(ctx context.Context, r storage.Reader, ev *event.Event, rec storage.EventRecord, before historyState) (bool, error) {
	ok, err := u.decide(ctx, r, ev, rec, before)
	if ok && err == nil && u.membershipAt != nil {
		u.membershipAt[ev.ID()] = membershipAfter(ev, u.userID, before.membership)
	}
	return ok, err
}

// membershipAfter is userID's membership in the state after ev, given the one before: only the
// user's own membership event changes it. No membership at all counts as "leave", as the spec
// of unsigned.membership says.
func membershipAfter(ev *event.Event, userID, before string) string {
	if ev.Type() == auth.TypeMember && ev.StateKeyEquals(userID) {
		if m, err := ev.Membership(); err == nil && m != "" {
			return m
		}
	}
	if before == "" {
		return "leave"
	}
	return before
}

// decide applies the history visibility rules of VisibleEvents to ev.
func (u *userVisibility) decide(ctx context.Context, r storage.Reader, ev *event.Event, rec storage.EventRecord, before historyState) (bool, error) {
	if u.ignored[ev.Sender()] && ev.StateKey() == nil {
		return false, nil
	}
	allowed := func(st historyState) (bool, error) {
		switch {
		case st.visibility == VisibilityWorldReadable:
			return true, nil
		case st.joined:
			return true, nil
		case st.visibility == VisibilityShared:
			// Backfilled history has negative stream positions: before every join.
			p, err := u.latestJoin(ctx, r, rec.Room)
			return p > 0 && p > rec.StreamPos && rec.StreamPos != 0, err
		case st.visibility == VisibilityInvited && st.invited:
			return true, nil
		}
		return false, nil
	}
	ok, err := allowed(before)
	if err != nil || ok {
		return ok, err
	}
	// The state after the event differs from the state before only where the event itself
	// sets what the rules read.
	isHV := ev.Type() == typeHistoryVisibility
	isOwnMember := ev.Type() == auth.TypeMember && ev.StateKeyEquals(u.userID)
	if !isHV && !isOwnMember {
		return false, nil
	}
	after := before
	if isHV && ev.StateKeyEquals("") {
		after.visibility = historyVisibility(ev.JSON())
	}
	if isOwnMember {
		m, _ := ev.Membership()
		after.joined, after.invited = m == "join", m == "invite"
	}
	return allowed(after)
}

// latestJoin is the stream position of the user's latest join to the room, 0 if none.
func (u *userVisibility) latestJoin(ctx context.Context, r storage.Reader, room storage.RoomNID) (int64, error) {
	if p, ok := u.joinPos[room]; ok {
		return p, nil
	}
	m, err := storage.GetMembership(ctx, r, room, u.userID)
	if err != nil && !isNotFound(err) {
		return 0, err
	}
	u.joinPos[room] = m.JoinPos
	return m.JoinPos, nil
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
