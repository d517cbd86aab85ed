package clientapi

import (
	"context"
	"encoding/json"
	"errors"
	"slices"

	"myelin/keys/e2e"
	"myelin/roomserver"
	"myelin/roomserver/event"
	"myelin/storage"
)

// computeSync builds one /sync response from the database as it is now.
func (h *syncHandlers) computeSync(ctx context.Context, who Requester, req syncRequest) (*syncResponse, error) {
	resp := newSyncResponse()
	initial := req.since == nil
	var since SyncToken
	if !initial {
		since = *req.since
	}
	var (
		to          SyncToken
		rooms       []storage.UserRoom
		accountData []storage.AccountData
	)
	// One snapshot for the positions and the memberships, so that a membership never runs
	// ahead of the events position of the token handed out. The positions of the other
	// streams are read with it, in one query: each section below reads up to its position
	// in to (and to-device messages beyond it, see syncKeys).
	err := h.db.WithReadTx(ctx, func(r storage.Reader) error {
		pos, err := storage.CurrentStreamPositions(ctx, r, "events", storage.AccountDataStream,
			storage.ToDeviceStream, storage.DeviceListStream, storage.ReceiptsStream)
		if err != nil {
			return err
		}
		to.Events, to.AccountData, to.ToDevice, to.DeviceLists, to.Receipts = pos[0], pos[1], pos[2], pos[3], pos[4]
		// A token from before a database reset must not hide everything that follows.
		since.Events, since.AccountData = min(since.Events, to.Events), min(since.AccountData, to.AccountData)
		if initial || req.fullState {
			rooms, err = storage.RoomsOfUserAll(ctx, r, who.UserID)
		} else if to.Events > since.Events {
			rooms, err = storage.RoomsChangedForUser(ctx, r, who.UserID, since.Events, to.Events)
		}
		if err != nil {
			return err
		}
		if to.AccountData > since.AccountData {
			accountData, err = storage.AccountDataBetween(ctx, r, who.UserID, since.AccountData, to.AccountData)
		}
		return err
	})
	if err != nil {
		return nil, err
	}

	ignored, err := roomserver.IgnoredUsers(ctx, h.db, who.UserID)
	if err != nil {
		return nil, err
	}
	roomData := map[string][]basicEvent{}
	for _, d := range accountData {
		ev := basicEvent{Type: d.Type, Content: d.Content}
		if d.RoomID == "" {
			if req.filter.AccountData.AllowsEvent(d.Type, who.UserID) {
				resp.AccountData.Events = append(resp.AccountData.Events, ev)
			}
			continue
		}
		if req.filter.Room.AccountData.AllowsRoom(d.RoomID) && req.filter.Room.AccountData.AllowsEvent(d.Type, who.UserID) {
			roomData[d.RoomID] = append(roomData[d.RoomID], ev)
		}
	}
	if err := h.syncPushRules(ctx, who, initial, req, resp); err != nil {
		return nil, err
	}

	lazy := req.filter.Room.State.LazyLoadMembers
	if initial && lazy {
		// The device starts over: every member it needs is sent again.
		if err := h.db.WithTx(ctx, func(tx *storage.Tx) error {
			return tx.ForgetLazyMembers(ctx, who.Localpart, who.DeviceID)
		}); err != nil {
			return nil, err
		}
	}

	if h.cfg.Rooms != nil {
		var forgotten forgottenRooms
		for _, ur := range rooms {
			if !req.filter.Room.AllowsRoom(ur.RoomID) || ur.MembershipPos > to.Events {
				continue
			}
			changedSince := initial || ur.MembershipPos > since.Events
			switch ur.Membership {
			case "join":
				from := since.Events
				if changedSince {
					from = 0 // a room joined since the last sync is sent as in an initial sync
				}
				jr, err := h.joinedRoom(ctx, who, ur, from, to.Events, req)
				if err != nil {
					return nil, err
				}
				if jr != nil {
					jr.AccountData.Events = append(jr.AccountData.Events, roomData[ur.RoomID]...)
					resp.Rooms.Join[ur.RoomID] = jr
				}
			case "invite", "knock":
				if !changedSince {
					continue
				}
				stripped, err := h.strippedState(ctx, ur)
				if err != nil {
					return nil, err
				}
				if ur.Membership == "invite" {
					if invitedByIgnored(stripped, who.UserID, ignored) {
						continue
					}
					resp.Rooms.Invite[ur.RoomID] = &invitedRoom{InviteState: strippedState{Events: stripped}}
				} else {
					resp.Rooms.Knock[ur.RoomID] = &knockedRoom{KnockState: strippedState{Events: stripped}}
				}
			case "leave", "ban":
				if initial && !req.filter.Room.IncludeLeave || !initial && ur.MembershipPos <= since.Events {
					continue
				}
				if gone, err := forgotten.has(ctx, h.db, who.UserID, ur); err != nil {
					return nil, err
				} else if gone {
					continue
				}
				lr, err := h.leftRoom(ctx, who, ur, since.Events, req)
				if err != nil {
					return nil, err
				}
				lr.AccountData.Events = append(lr.AccountData.Events, roomData[ur.RoomID]...)
				resp.Rooms.Leave[ur.RoomID] = lr
			}
		}
		inviteFrom := since.Events
		if initial || req.fullState {
			inviteFrom = 0
		}
		if err := h.addRemoteInvites(ctx, who, inviteFrom, to.Events, req, resp); err != nil {
			return nil, err
		}
		// Rooms whose only news is account data.
		for roomID, evs := range roomData {
			if _, ok := resp.Rooms.Join[roomID]; ok {
				continue
			}
			if _, ok := resp.Rooms.Leave[roomID]; ok {
				continue
			}
			joined, err := h.isJoined(ctx, roomID, who.UserID)
			if err != nil {
				return nil, err
			}
			if joined && req.filter.Room.AllowsRoom(roomID) {
				jr := newJoinedRoom()
				jr.AccountData.Events = evs
				if req.useStateAfter {
					jr.StateAfter = &stateEvents{Events: []ClientEvent{}}
				} else {
					jr.State = &stateEvents{Events: []ClientEvent{}}
				}
				jr.Timeline.PrevBatch = RoomToken{Stream: to.Events}.String()
				resp.Rooms.Join[roomID] = jr
			}
		}
	}

	// Typing and receipts (receipts.go) record their positions in to.
	if err := h.syncEphemeral(ctx, who, since, &to, resp, req); err != nil {
		return nil, err
	}
	// Presence (sync_presence.go) records its position in to.
	if err := h.syncPresence(ctx, who, since, &to, resp, req); err != nil {
		return nil, err
	}
	// Unread notification counts (notifications.go) record their position in to.
	if err := h.syncUnreadCounts(ctx, who, initial, since, &to, resp, req); err != nil {
		return nil, err
	}
	next, err := h.syncKeys(ctx, who, initial, since, to, resp)
	if err != nil {
		return nil, err
	}
	if !initial && h.cfg.Rooms != nil {
		if err := h.addMembershipDeviceLists(ctx, who.UserID, since.Events, to.Events, resp); err != nil {
			return nil, err
		}
	}
	resp.NextBatch = next.String()
	return resp, nil
}

func (h *syncHandlers) isJoined(ctx context.Context, roomID, userID string) (bool, error) {
	room, err := storage.GetRoom(ctx, h.db, roomID)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	m, err := storage.GetMembership(ctx, h.db, room.NID, userID)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	return m.Membership == "join", err
}

// syncKeys fills the end-to-end encryption sections and returns the next token.
func (h *syncHandlers) syncKeys(ctx context.Context, who Requester, initial bool, since, to SyncToken, resp *syncResponse) (SyncToken, error) {
	next := to
	if h.keys == nil {
		next.ToDevice, next.DeviceLists = 0, 0
		return next, nil
	}
	// A device that syncs with a token has received the messages before it.
	if err := h.keys.AckToDevice(ctx, who.UserID, who.DeviceID, since.ToDevice); err != nil {
		return next, err
	}
	// A message after the token has a position after it on the to-device stream, so when the
	// stream has not moved there is none to look for (the usual case of a woken long-poll). One
	// queued after to was read comes with the next sync, whose token is to.
	var msgs []e2e.ToDeviceEvent
	if to.ToDevice > since.ToDevice {
		var err error
		msgs, err = h.keys.ToDeviceSince(ctx, who.UserID, who.DeviceID, since.ToDevice, e2e.ToDeviceLimit)
		if err != nil {
			return next, err
		}
	}
	resp.ToDevice.Events = append(resp.ToDevice.Events, msgs...)
	if len(msgs) > 0 {
		last := msgs[len(msgs)-1].Pos
		if len(msgs) >= e2e.ToDeviceLimit {
			next.ToDevice = last // the rest comes with the next sync
		} else {
			next.ToDevice = max(next.ToDevice, last)
		}
	}
	if !initial && to.DeviceLists > since.DeviceLists {
		changes, err := h.keys.DeviceListChanges(ctx, who.UserID, since.DeviceLists, to.DeviceLists)
		if err != nil {
			return next, err
		}
		if len(changes.Changed) > 0 || len(changes.Left) > 0 {
			resp.DeviceLists = &changes
		}
	}
	return next, nil
}

// syncKeyCounts fills in the device's one-time key counts and unused fallback key types, which
// every response carries but none waits for: syncWait adds them to the response it returns,
// not to each empty one a long-poll computes.
func (h *syncHandlers) syncKeyCounts(ctx context.Context, who Requester, resp *syncResponse) error {
	if h.keys != nil {
		counts, err := h.keys.OneTimeKeyCounts(ctx, who.UserID, who.DeviceID)
		if err != nil {
			return err
		}
		for alg, n := range counts {
			resp.OneTimeKeysCount[alg] = n
		}
		fallback, err := h.keys.UnusedFallbackKeyTypes(ctx, who.UserID, who.DeviceID)
		if err != nil {
			return err
		}
		if fallback != nil {
			resp.UnusedFallback = fallback
		}
	}
	// Clients read the absence of signed_curve25519 as "the server does not count keys".
	if _, ok := resp.OneTimeKeysCount["signed_curve25519"]; !ok {
		resp.OneTimeKeysCount["signed_curve25519"] = 0
	}
	return nil
}

// roomWindow and window are in sync_timeline.go.

func parseRecords(recs []storage.EventRecord, v event.RoomVersion) []*event.Event {
	out := make([]*event.Event, 0, len(recs))
	for _, rec := range recs {
		if rec.JSON == nil {
			continue // pruned: nothing left to show
		}
		if ev, err := event.Parse(rec.JSON, v); err == nil {
			out = append(out, ev)
		}
	}
	return out
}

// roomState holds the state sections of a room in a sync.
type roomState struct {
	state      []*event.Event
	stateAfter bool // the events are state_after, not state
}

// stateFor computes the state section: the full state at the start (or, with
// use_state_after, the end) of the timeline, or only what changed since from.
func (h *syncHandlers) stateFor(ctx context.Context, ur storage.UserRoom, w *roomWindow, from, upto int64, full bool, req syncRequest) (roomState, error) {
	rs := roomState{stateAfter: req.useStateAfter}
	snap, changedTo := w.start, w.statePos
	if req.useStateAfter {
		snap, changedTo = w.endSnap, upto
	}
	var keys []storage.StateKey
	if !full {
		if !req.useStateAfter && !w.limited {
			return rs, nil // the timeline holds every change
		}
		var err error
		if keys, err = storage.StateKeysChangedBetween(ctx, h.db, ur.Room, from, changedTo); err != nil {
			return rs, err
		}
		if len(keys) == 0 {
			return rs, nil
		}
	}
	// A full state section with lazy-loaded members keeps only a few of the room's membership
	// events, which lazyMembers reads by key: the others are not loaded at all.
	var skip storage.TypeNID
	if full && req.filter.Room.State.LazyLoadMembers {
		types, err := storage.LookupTypeNIDs(ctx, h.db, []string{"m.room.member"})
		if err != nil {
			return rs, err
		}
		skip = types["m.room.member"]
	}
	evs, err := h.stateEvents(ctx, snap, keys, full, w.version, skip)
	if err != nil {
		return rs, err
	}
	inTimeline := map[string]bool{}
	if !req.useStateAfter {
		for _, ev := range w.events {
			inTimeline[ev.ID()] = true
		}
	}
	sf := req.filter.Room.State
	for _, ev := range evs {
		if !inTimeline[ev.ID()] && sf.Allows(ev) {
			rs.state = append(rs.state, ev)
		}
	}
	return rs, nil
}

// stateEvents reads the events of a snapshot: all of them when all is set, else those of keys;
// never those of type skip (0 skips nothing).
func (h *syncHandlers) stateEvents(ctx context.Context, snap storage.SnapshotNID, keys []storage.StateKey, all bool, v event.RoomVersion, skip storage.TypeNID) ([]*event.Event, error) {
	var entries []storage.StateEntry
	var err error
	if all {
		entries, err = storage.SnapshotState(ctx, h.db, snap)
	} else {
		entries, err = storage.SnapshotLookup(ctx, h.db, snap, keys)
	}
	if err != nil || len(entries) == 0 {
		return nil, err
	}
	nids := make([]storage.EventNID, 0, len(entries))
	for _, e := range entries {
		if skip == 0 || e.Key.Type != skip {
			nids = append(nids, e.Event)
		}
	}
	recs, err := storage.EventsByNID(ctx, h.db, nids)
	if err != nil {
		return nil, err
	}
	// Stable output: state in the order the events entered the room.
	slices.SortFunc(recs, func(a, b storage.EventRecord) int { return int(a.NID - b.NID) })
	return parseRecords(recs, v), nil
}

// memberKeys returns the state keys of the m.room.member events of users that have ids.
func (h *syncHandlers) memberKeys(ctx context.Context, users []string) ([]storage.StateKey, error) {
	types, err := storage.LookupTypeNIDs(ctx, h.db, []string{"m.room.member"})
	if err != nil || len(types) == 0 {
		return nil, err
	}
	sks, err := storage.LookupStateKeyNIDs(ctx, h.db, users)
	if err != nil {
		return nil, err
	}
	out := make([]storage.StateKey, 0, len(sks))
	for _, k := range sks {
		out = append(out, storage.StateKey{Type: types["m.room.member"], StateKey: k})
	}
	return out, nil
}

// lazyMembers applies lazy-loading to a state section: membership events are kept only for
// the senders of the timeline (and the user, on a full sync, and the heroes), and those the
// device was already sent are left out unless include_redundant_members. Changes in the gap
// of a limited incremental sync are always kept, as the spec requires.
func (h *syncHandlers) lazyMembers(ctx context.Context, who Requester, ur storage.UserRoom, w *roomWindow, rs *roomState, full bool, heroes []string, req syncRequest) error {
	need := map[string]bool{}
	for _, ev := range w.events {
		need[ev.Sender()] = true
	}
	if full {
		need[who.UserID] = true
	}
	// Heroes name a room that has no name: only then are their memberships needed.
	if !hasRoomName(rs.state) {
		for _, u := range heroes {
			need[u] = true
		}
	}
	kept := rs.state[:0:0]
	have := map[string]bool{}
	// In an incremental sync the state section holds only changes in the gap, which are
	// always sent.
	gap := map[string]bool{}
	for _, ev := range rs.state {
		if ev.Type() == "m.room.member" && ev.StateKey() != nil && full && !need[*ev.StateKey()] {
			continue
		}
		if ev.Type() == "m.room.member" && ev.StateKey() != nil {
			have[*ev.StateKey()] = true
			gap[ev.ID()] = !full
		}
		kept = append(kept, ev)
	}
	for _, ev := range w.events {
		if ev.Type() == "m.room.member" && ev.StateKey() != nil && !rs.stateAfter {
			have[*ev.StateKey()] = true
		}
	}
	var missing []string
	for u := range need {
		if !have[u] {
			missing = append(missing, u)
		}
	}
	if len(missing) > 0 {
		keys, err := h.memberKeys(ctx, missing)
		if err != nil {
			return err
		}
		snap := w.start
		if rs.stateAfter {
			snap = w.endSnap
		}
		evs, err := h.stateEvents(ctx, snap, keys, false, w.version, 0)
		if err != nil {
			return err
		}
		for _, ev := range evs {
			// On a full sync these were left for here by stateFor, before its filter.
			if !full || req.filter.Room.State.Allows(ev) {
				kept = append(kept, ev)
			}
		}
	}
	sent, err := storage.LazyMembersSent(ctx, h.db, who.Localpart, who.DeviceID, ur.RoomID)
	if err != nil {
		return err
	}
	record := map[string]string{}
	out := kept[:0:0]
	for _, ev := range kept {
		if ev.Type() == "m.room.member" && ev.StateKey() != nil {
			m := *ev.StateKey()
			redundant := sent[m] == ev.ID()
			if redundant && !gap[ev.ID()] && !req.filter.Room.State.IncludeRedundantMembers && !(full && m == who.UserID) {
				continue
			}
			record[m] = ev.ID()
		}
		out = append(out, ev)
	}
	for _, ev := range w.events {
		if ev.Type() == "m.room.member" && ev.StateKey() != nil {
			record[*ev.StateKey()] = ev.ID()
		}
	}
	rs.state = out
	if len(record) == 0 {
		return nil
	}
	return h.db.WithTx(ctx, func(tx *storage.Tx) error {
		return tx.RecordLazyMembersSent(ctx, who.Localpart, who.DeviceID, ur.RoomID, record)
	})
}

// timelineEvents formats the window for the client, with the requesting device's transaction
// ids and, for state events, the state they replaced.
func (h *syncHandlers) timelineEvents(ctx context.Context, who Requester, w *roomWindow) ([]ClientEvent, error) {
	now := h.now()
	out := make([]ClientEvent, 0, len(w.events))
	if len(w.events) == 0 {
		return out, nil
	}
	txns, err := transactionIDs(ctx, h.db, who, w.events)
	if err != nil {
		return nil, err
	}
	replaced, err := h.replacedState(ctx, w)
	if err != nil {
		return nil, err
	}
	redactedBy, err := h.redactionsOf(ctx, w.events)
	if err != nil {
		return nil, err
	}
	shown, err := h.withoutUnappliedRedactions(ctx, w.events)
	if err != nil {
		return nil, err
	}
	for _, ev := range shown {
		opt := ClientEventOptions{TransactionID: txns[ev.ID()], RedactedBy: redactedBy[ev.ID()], Membership: membershipAt(ctx, ev.ID())}
		if prev := replaced[ev.ID()]; prev != nil {
			// The user sees this state event, and sharing a room's state history with its
			// members is what the room's history visibility already allows.
			opt.Replaced, opt.PrevVisible = prev, true
		}
		out = append(out, ToClientEvent(ev, FormatSync, now, opt))
	}
	if err := h.bundleAggregations(ctx, who, shown, out, FormatSync); err != nil {
		return nil, err
	}
	return out, nil
}

// replacedState finds, for each state event of the window, the event it replaced: the
// previous event of the window with the same (type, state_key), or else the entry of the
// state before the window, read in one lookup. Within a window this follows the stream order,
// which is the DAG order except across a fork that state resolution settled otherwise; there
// replaces_state names the event that came before in this server's timeline.
func (h *syncHandlers) replacedState(ctx context.Context, w *roomWindow) (map[string]*event.Event, error) {
	shown := map[string]bool{}
	for _, ev := range w.events {
		if ev.IsState() {
			shown[ev.ID()] = true
		}
	}
	if len(shown) == 0 {
		return nil, nil
	}
	byID := map[string]*event.Event{}
	for _, ev := range w.events {
		byID[ev.ID()] = ev
	}
	out := map[string]*event.Event{}
	lastInWindow := map[storage.StateKey]storage.EventRecord{}
	firstOf := map[storage.StateKey][]string{} // tuples whose first window event needs the state before
	for _, rec := range w.recs {
		if rec.StateKey == nil || rec.Rejected {
			continue
		}
		k := storage.StateKey{Type: rec.TypeNID, StateKey: rec.StateKeyNID}
		if prev, ok := lastInWindow[k]; ok {
			if shown[rec.EventID] {
				if ev := byID[prev.EventID]; ev != nil {
					out[rec.EventID] = ev
				} else if evs := parseRecords([]storage.EventRecord{prev}, w.version); len(evs) == 1 {
					out[rec.EventID] = evs[0]
				}
			}
		} else if shown[rec.EventID] {
			firstOf[k] = append(firstOf[k], rec.EventID)
		}
		lastInWindow[k] = rec
	}
	if len(firstOf) == 0 || w.start == 0 {
		return out, nil
	}
	keys := make([]storage.StateKey, 0, len(firstOf))
	for k := range firstOf {
		keys = append(keys, k)
	}
	entries, err := storage.SnapshotLookup(ctx, h.db, w.start, keys)
	if err != nil || len(entries) == 0 {
		return out, err
	}
	nids := make([]storage.EventNID, len(entries))
	for i, e := range entries {
		nids[i] = e.Event
	}
	recs, err := storage.EventsByNID(ctx, h.db, nids)
	if err != nil {
		return nil, err
	}
	byNID := map[storage.EventNID]*event.Event{}
	for _, rec := range recs {
		if evs := parseRecords([]storage.EventRecord{rec}, w.version); len(evs) == 1 {
			byNID[rec.NID] = evs[0]
		}
	}
	for _, e := range entries {
		if ev := byNID[e.Event]; ev != nil {
			for _, id := range firstOf[e.Key] {
				out[id] = ev
			}
		}
	}
	return out, nil
}

// joinedRoom builds a joined room's section; nil when an incremental sync has nothing in it.
func (h *syncHandlers) joinedRoom(ctx context.Context, who Requester, ur storage.UserRoom, from, upto int64, req syncRequest) (*joinedRoom, error) {
	full := from == 0 || req.fullState
	w, err := h.window(ctx, who, ur, from, upto, req)
	if err != nil {
		return nil, err
	}
	rs, err := h.stateFor(ctx, ur, w, from, upto, full, req)
	if err != nil {
		return nil, err
	}
	if !full && len(w.events) == 0 && len(rs.state) == 0 {
		return nil, nil
	}
	jr := newJoinedRoom()
	membersChanged := full
	for _, ev := range append(slices.Clone(w.events), rs.state...) {
		membersChanged = membersChanged || ev.Type() == "m.room.member"
	}
	var heroes []string
	if membersChanged {
		if jr.Summary, err = h.summary(ctx, ur, who.UserID, w, upto); err != nil {
			return nil, err
		}
		heroes = jr.Summary.Heroes
	}
	if req.filter.Room.State.LazyLoadMembers {
		if err := h.lazyMembers(ctx, who, ur, w, &rs, full, heroes, req); err != nil {
			return nil, err
		}
	}
	if jr.Timeline.Events, err = h.timelineEvents(ctx, who, w); err != nil {
		return nil, err
	}
	jr.Timeline.Limited = w.limited
	jr.Timeline.PrevBatch = RoomToken{Stream: w.startPos}.String()
	stateOut, err := h.formatEvents(ctx, rs.state, FormatSync, h.now())
	if err != nil {
		return nil, err
	}
	section := &stateEvents{Events: stateOut}
	if rs.stateAfter {
		jr.StateAfter = section
	} else {
		jr.State = section
	}
	return jr, nil
}

// leftRoom builds the section of a room the user left (or was banned from): the timeline up
// to their leave, and the state before it.
func (h *syncHandlers) leftRoom(ctx context.Context, who Requester, ur storage.UserRoom, from int64, req syncRequest) (*leftRoom, error) {
	full := from == 0 || req.fullState
	w, err := h.window(ctx, who, ur, from, ur.MembershipPos, req)
	if err != nil {
		return nil, err
	}
	rs, err := h.stateFor(ctx, ur, w, from, ur.MembershipPos, full, req)
	if err != nil {
		return nil, err
	}
	if req.filter.Room.State.LazyLoadMembers {
		if err := h.lazyMembers(ctx, who, ur, w, &rs, full, nil, req); err != nil {
			return nil, err
		}
	}
	lr := &leftRoom{AccountData: eventList{Events: []basicEvent{}}}
	if lr.Timeline.Events, err = h.timelineEvents(ctx, who, w); err != nil {
		return nil, err
	}
	lr.Timeline.Limited = w.limited
	lr.Timeline.PrevBatch = RoomToken{Stream: w.startPos}.String()
	stateOut, err := h.formatEvents(ctx, rs.state, FormatSync, h.now())
	if err != nil {
		return nil, err
	}
	section := &stateEvents{Events: stateOut}
	if rs.stateAfter {
		lr.StateAfter = section
	} else {
		lr.State = section
	}
	return lr, nil
}

// summary is in sync_summary.go.

// strippedStateTypes are the state events an invitee or knocker is shown (client-server API,
// "Stripped state": the recommended set).
var strippedStateTypes = []string{
	"m.room.create", "m.room.join_rules", "m.room.name", "m.room.avatar",
	"m.room.canonical_alias", "m.room.encryption", "m.room.topic",
}

// strippedState is the state shown with an invite or a knock: the invite_room_state a remote
// server sent with the invite if there is one, else the room's state at the membership event;
// and the membership event itself.
func (h *syncHandlers) strippedState(ctx context.Context, ur storage.UserRoom) ([]StrippedStateEvent, error) {
	recs, err := storage.EventsByNID(ctx, h.db, []storage.EventNID{ur.MembershipEvent})
	if err != nil || len(recs) == 0 {
		return []StrippedStateEvent{}, err
	}
	v, err := event.Version(ur.Version)
	if err != nil {
		return nil, err
	}
	own := parseRecords(recs, v)
	if len(own) == 0 {
		return []StrippedStateEvent{}, nil
	}
	var unsigned struct {
		InviteRoomState []StrippedStateEvent `json:"invite_room_state"`
		KnockRoomState  []StrippedStateEvent `json:"knock_room_state"`
	}
	_ = json.Unmarshal(own[0].Unsigned(), &unsigned)
	var out []StrippedStateEvent
	switch {
	case len(unsigned.InviteRoomState) > 0:
		out = unsigned.InviteRoomState
	case len(unsigned.KnockRoomState) > 0:
		out = unsigned.KnockRoomState
	default:
		types, err := storage.LookupTypeNIDs(ctx, h.db, strippedStateTypes)
		if err != nil {
			return nil, err
		}
		empty, err := storage.LookupStateKeyNIDs(ctx, h.db, []string{""})
		if err != nil {
			return nil, err
		}
		var keys []storage.StateKey
		if k, ok := empty[""]; ok {
			for _, t := range types {
				keys = append(keys, storage.StateKey{Type: t, StateKey: k})
			}
		}
		evs, err := h.stateEvents(ctx, recs[0].StateBefore, keys, false, v, 0)
		if err != nil {
			return nil, err
		}
		out = ToStrippedState(evs)
	}
	return append(out, ToStrippedState(own)...), nil
}

// hasRoomName reports whether state holds a non-empty m.room.name or m.room.canonical_alias.
func hasRoomName(state []*event.Event) bool {
	for _, ev := range state {
		var c struct {
			Name  string `json:"name"`
			Alias string `json:"alias"`
		}
		switch {
		case ev.Type() == "m.room.name" && ev.StateKeyEquals(""):
		case ev.Type() == "m.room.canonical_alias" && ev.StateKeyEquals(""):
		default:
			continue
		}
		if json.Unmarshal(ev.Content(), &c) == nil && (c.Name != "" || c.Alias != "") {
			return true
		}
	}
	return false
}
