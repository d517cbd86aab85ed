package roomserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"myelin/keys"
	"myelin/roomserver/auth"
	"myelin/roomserver/event"
	"myelin/storage"
)

// Joins, leaves, knocks and invites that go through other servers: the room server's side of
// the handshakes of the server-server API ("Joining Rooms", "Knocking upon a room", "Inviting
// to a room", "Leaving Rooms"), over the Federation interface.

// ErrRemoteFailed: no server could complete a join, leave, knock or invite over federation
// (unreachable, or answering with errors other than a refusal). The last error is wrapped.
var ErrRemoteFailed = errors.New("roomserver: no server could complete the request over federation")

// remoteTimeout bounds one handshake with one server, so that a dead candidate does not hold
// the user (and the room's lock) for the client's whole request.
const remoteTimeout = 30 * time.Second

// JoinVia makes a local user join a room. When this server is in the room (some local user is
// joined), the join is a local event. Otherwise the join goes through another server: via
// first, then the server that invited the user, the server named in the room id, and the
// servers the room's last known state has joined; ErrRemoteJoinUnsupported when there is no
// candidate or no federation. A non-empty reason goes into the join event's content.
func (s *Server) JoinVia(ctx context.Context, roomID, userID, reason string, via []string) (*event.Event, error) {
	if !s.isLocalUser(userID) {
		return nil, fmt.Errorf("%w: %q is not a user of this server", ErrInvalid, userID)
	}
	// The room's lock is held through the handshake: two local users joining at once make one
	// remote join, and the second a local one.
	slot, unlock, err := s.lockRoom(ctx, roomID)
	if err != nil {
		return nil, err
	}
	in, err := s.participating(ctx, roomID)
	var candidates []string
	if err == nil && !in {
		candidates, err = s.candidates(ctx, roomID, userID, via)
	}
	if err != nil {
		unlock()
		return nil, err
	}
	if in || s.opts.Federation == nil || len(candidates) == 0 {
		unlock()
		if known, err := s.roomKnown(ctx, roomID); err != nil {
			return nil, err
		} else if !known {
			return nil, fmt.Errorf("%w: %s", ErrRemoteJoinUnsupported, roomID)
		}
		// In the room, or in a room everyone has left with no one to ask: a local join.
		return s.sendMembership(ctx, roomID, userID, userID, "join", reason, nil)
	}
	defer unlock()
	var errs []error
	for _, server := range candidates {
		ev, err := s.joinThrough(ctx, slot, server, roomID, userID, reason)
		if err == nil {
			if err := s.ForgetRemoteInvite(ctx, userID, roomID); err != nil {
				return nil, err
			}
			return ev, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", server, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, remoteFailure(errs)
}

// ResolveRemoteAlias asks the server of an alias of another server which room it names
// (GET /query/directory) and returns the room and the servers to join it through, for
// JoinVia. ErrRemoteJoinUnsupported without federation; ErrNotFound if the alias is unknown.
func (s *Server) ResolveRemoteAlias(ctx context.Context, alias string) (roomID string, servers []string, err error) {
	if s.opts.Federation == nil {
		return "", nil, fmt.Errorf("%w: alias %s", ErrRemoteJoinUnsupported, alias)
	}
	ctx, cancel := context.WithTimeout(ctx, remoteTimeout)
	defer cancel()
	return s.opts.Federation.QueryDirectory(ctx, alias)
}

// reasonContent is the content a membership template gets for a reason: none when empty.
func reasonContent(reason string) map[string]any {
	if reason == "" {
		return nil
	}
	return map[string]any{"reason": reason}
}

// remoteFailure turns the errors of every candidate into one: a refusal (ErrNotAllowed,
// ErrNotFound, an unsupported room version) if every server refused, else ErrRemoteFailed.
func remoteFailure(errs []error) error {
	all := errors.Join(errs...)
	for _, sentinel := range []error{ErrNotAllowed, ErrNotFound, ErrInvalid} {
		every := len(errs) > 0
		for _, e := range errs {
			if !errors.Is(e, sentinel) {
				every = false
			}
		}
		if every {
			return fmt.Errorf("%w: %w", sentinel, all)
		}
	}
	var unsupported event.ErrUnsupportedRoomVersion
	if errors.As(all, &unsupported) {
		return fmt.Errorf("%w: %w", unsupported, all)
	}
	return fmt.Errorf("%w: %w", ErrRemoteFailed, all)
}

// joinThrough makes the join handshake with one server and stores the room. The caller holds
// the room's lock (slot).
func (s *Server) joinThrough(ctx context.Context, slot *roomSlot, server, roomID, userID, reason string) (*event.Event, error) {
	ctx, cancel := context.WithTimeout(ctx, remoteTimeout)
	defer cancel()
	profile, err := s.withProfile(ctx, userID, reasonContent(reason))
	if err != nil {
		return nil, err
	}
	ev, v, err := s.remoteTemplate(ctx, server, "join", roomID, userID, profile)
	if err != nil {
		return nil, err
	}
	joined, err := s.opts.Federation.SendJoin(ctx, server, ev)
	if err != nil {
		return nil, err
	}
	if r := joined.Event; r != nil && r.ID() == ev.ID() && r.Sender() == ev.Sender() {
		ev = r // with the resident's signature, which a restricted join needs
	}
	if err := s.importJoinedRoom(ctx, slot, v, ev, joined.State, joined.AuthChain); err != nil {
		return nil, err
	}
	s.noteJoinedVia(ctx, roomID, server)
	return ev, nil
}

// remoteTemplate asks server for a membership template of userID, checks it is what was asked
// for, fills it in (origin_server_ts, and event_id and origin in room versions 1 and 2), adds
// content (a reason) and signs it.
func (s *Server) remoteTemplate(ctx context.Context, server, membership, roomID, userID string, extra map[string]any) (*event.Event, event.RoomVersion, error) {
	versionID, tmpl, err := s.opts.Federation.MakeMembership(ctx, server, membership, roomID, userID, event.Versions())
	if err != nil {
		return nil, event.RoomVersion{}, err
	}
	v, err := event.Version(versionID)
	if err != nil {
		return nil, event.RoomVersion{}, err
	}
	ev, err := s.fillTemplate(tmpl, v, membership, roomID, userID, extra)
	if err != nil {
		return nil, event.RoomVersion{}, fmt.Errorf("%w: template from %s: %w", ErrInvalid, server, err)
	}
	return ev, v, nil
}

// fillTemplate completes and signs a make_join/make_leave/make_knock template after the checks
// the spec asks for: type, room_id, sender, state_key and content.membership as expected.
func (s *Server) fillTemplate(tmpl json.RawMessage, v event.RoomVersion, membership, roomID, userID string, extra map[string]any) (*event.Event, error) {
	var t struct {
		Type     string  `json:"type"`
		RoomID   string  `json:"room_id"`
		Sender   string  `json:"sender"`
		StateKey *string `json:"state_key"`
		Content  struct {
			Membership string `json:"membership"`
		} `json:"content"`
	}
	if err := json.Unmarshal(tmpl, &t); err != nil {
		return nil, err
	}
	if t.Type != auth.TypeMember || t.RoomID != roomID || t.Sender != userID || t.StateKey == nil ||
		*t.StateKey != userID || t.Content.Membership != membership {
		return nil, errors.New("the template is not the membership event asked for")
	}
	o, err := keys.ParseObject(tmpl)
	if err != nil {
		return nil, err
	}
	if len(extra) > 0 {
		raw, _ := o.Get("content")
		content := map[string]any{}
		if err := json.Unmarshal(raw, &content); err != nil {
			return nil, err
		}
		for k, val := range extra {
			content[k] = val
		}
		o = o.With("content", mustJSON(content))
	}
	o = o.Without("signatures", "hashes", "unsigned", "event_id", "origin").
		With("origin_server_ts", fmt.Appendf(nil, "%d", s.opts.Now().UnixMilli())).
		With("signatures", []byte("{}"))
	if v.EventIDs == event.IDServerMinted {
		o = o.With("event_id", keys.Quote("$"+randomID(18)+":"+s.serverName)).With("origin", keys.Quote(s.serverName))
	}
	signed, err := event.HashAndSign(o.JSON(), v, s.serverName, s.key)
	if err != nil {
		return nil, err
	}
	return event.Parse(signed, v)
}

// participating says whether this server is in the room: a local user is joined to it.
func (s *Server) participating(ctx context.Context, roomID string) (bool, error) {
	return storage.RoomHasJoinedMemberOn(ctx, s.db, roomID, s.serverName)
}

func (s *Server) roomKnown(ctx context.Context, roomID string) (bool, error) {
	room, err := storage.GetRoom(ctx, s.db, roomID)
	if isNotFound(err) {
		return false, nil
	}
	return err == nil && room.CurrentSnapshot != 0, err
}

// candidates lists the servers to try for a handshake about roomID, best first, without us.
func (s *Server) candidates(ctx context.Context, roomID, userID string, via []string) ([]string, error) {
	var out []string
	add := func(server string) {
		if server != "" && server != s.serverName && !slices.Contains(out, server) {
			out = append(out, server)
		}
	}
	for _, v := range via {
		add(v)
	}
	invites, err := s.RemoteInvites(ctx, userID, 0, 0)
	if err != nil {
		return nil, err
	}
	for _, inv := range invites {
		if inv.RoomID == roomID {
			add(string(inv.Event.SenderDomain()))
		}
	}
	if _, domain, ok := strings.Cut(roomID, ":"); ok {
		add(domain)
	}
	members, err := storage.RoomJoinedMembers(ctx, s.db, roomID)
	if err != nil {
		return nil, err
	}
	for _, m := range members {
		if u, err := event.ParseUserID(m); err == nil {
			add(string(u.Domain()))
		}
	}
	return out, nil
}

// importJoinedRoom stores a room this server joined through another server: the state before
// the join and the auth chain as outliers, each checked against its own auth events (events
// that fail are left out); the join event, checked against that state, on the timeline with
// its state; then the room's current state, memberships and forward extremities. The caller
// holds the room's lock (slot) and has had the signatures and hashes of the events checked.
func (s *Server) importJoinedRoom(ctx context.Context, slot *roomSlot, v event.RoomVersion, join *event.Event, state, authChain []*event.Event) error {
	roomID := join.RoomID()
	byID := map[string]*event.Event{}
	for _, ev := range slices.Concat(state, authChain) {
		if ev.Version().ID != v.ID || ev.RoomID() != roomID {
			continue // not of this room: ignored, and whatever needs it fails its auth check
		}
		byID[ev.ID()] = ev
	}
	var create *event.Event
	for _, ev := range state {
		if ev.Type() == auth.TypeCreate && ev.StateKeyEquals("") && byID[ev.ID()] != nil {
			create = byID[ev.ID()]
		}
	}
	if create == nil {
		return fmt.Errorf("%w: the room state has no create event of room %s", ErrInvalid, roomID)
	}

	// Events this server has already (a room it was in before) count as known auth events.
	var unknown []string
	for _, ev := range byID {
		for _, id := range ev.AuthEventIDs() {
			if byID[id] == nil {
				unknown = append(unknown, id)
			}
		}
	}
	for _, id := range join.AuthEventIDs() {
		if byID[id] == nil {
			unknown = append(unknown, id)
		}
	}
	stored := map[string]storage.EventRecord{}
	storedEv := map[string]*event.Event{}
	if len(unknown) > 0 {
		recs, err := storage.EventsByID(ctx, s.db, unknown)
		if err != nil {
			return err
		}
		for _, rec := range recs {
			if rec.Rejected || rec.JSON == nil {
				continue
			}
			ev, err := event.Parse(rec.JSON, v)
			if err != nil {
				continue
			}
			stored[rec.EventID], storedEv[rec.EventID] = rec, ev
		}
	}

	order := authOrder(byID)
	accepted := map[string]*event.Event{}
	authEventsOf := func(ev *event.Event) ([]*event.Event, bool) {
		var out []*event.Event
		for _, id := range ev.AuthEventIDs() {
			a := accepted[id]
			if a == nil {
				a = storedEv[id]
			}
			if a == nil {
				return nil, false
			}
			out = append(out, a)
		}
		return out, true
	}
	checkOwnAuth := func(ev *event.Event) error {
		authEvents, ok := authEventsOf(ev)
		if !ok {
			return fmt.Errorf("%w: auth events of %s are missing or rejected", auth.ErrNotAllowed, ev.ID())
		}
		if err := auth.CheckAuthEventsList(ev, authEvents); err != nil {
			return err
		}
		m := auth.NewStateMap(authEvents...)
		m.Add(create)
		return auth.Check(ev, m)
	}
	for _, ev := range order {
		if err := checkOwnAuth(ev); err == nil {
			accepted[ev.ID()] = ev
		}
	}
	if accepted[create.ID()] == nil {
		return fmt.Errorf("%w: the create event of room %s fails the auth rules", ErrInvalid, roomID)
	}
	stateMap := auth.StateMap{}
	for _, ev := range state {
		if a := accepted[ev.ID()]; a != nil && a.IsState() {
			stateMap.Add(a)
		}
	}
	if err := checkOwnAuth(join); err != nil {
		return fmt.Errorf("%w: our join event against its auth events: %w", ErrNotAllowed, err)
	}
	if err := auth.Check(join, stateMap); err != nil {
		return fmt.Errorf("%w: our join event against the room state: %w", ErrNotAllowed, err)
	}

	ti := txInterner{in: &s.intern}
	var (
		roomNID storage.RoomNID
		pos     int64
	)
	err := s.db.WithTx(ctx, func(tx *storage.Tx) error {
		room, err := storage.GetRoom(ctx, tx, roomID)
		switch {
		case isNotFound(err):
			if roomNID, err = tx.InsertRoom(ctx, roomID, v.ID); err != nil {
				return err
			}
		case err != nil:
			return err
		case room.Version != v.ID:
			return fmt.Errorf("%w: room %s is of version %s here, %s there", ErrInvalid, roomID, room.Version, v.ID)
		default:
			roomNID = room.NID
		}
		nids := map[string]storage.EventNID{}
		for id, rec := range stored {
			nids[id] = rec.NID
		}
		var ids []string
		for _, ev := range order {
			if accepted[ev.ID()] != nil {
				ids = append(ids, ev.ID())
			}
		}
		have, err := storage.EventsByID(ctx, tx, ids)
		if err != nil {
			return err
		}
		for _, rec := range have {
			nids[rec.EventID] = rec.NID
		}
		insert := func(ev *event.Event, rec storage.EventRecord) (storage.EventNID, error) {
			rec.Room, rec.EventID, rec.Type, rec.StateKey, rec.Sender = roomNID, ev.ID(), ev.Type(), ev.StateKey(), ev.Sender()
			rec.Depth, rec.OriginServerTS, rec.JSON = ev.Depth(), ev.OriginServerTS(), ev.JSON()
			if t, ok := ev.Tuple(); ok {
				k, err := ti.key(ctx, tx, t)
				if err != nil {
					return 0, err
				}
				rec.TypeNID, rec.StateKeyNID = k.Type, k.StateKey
			}
			nid, err := tx.InsertEvent(ctx, rec)
			if err != nil {
				return 0, err
			}
			var authNIDs []storage.EventNID
			for _, id := range ev.AuthEventIDs() {
				authNIDs = append(authNIDs, nids[id])
			}
			if v.RoomIDFromCreateEvent && ev.ID() != create.ID() && !slices.Contains(authNIDs, nids[create.ID()]) {
				authNIDs = append(authNIDs, nids[create.ID()])
			}
			if err := tx.InsertAuthEdges(ctx, nid, authNIDs); err != nil {
				return 0, err
			}
			if err := tx.InsertPrevEdges(ctx, nid, ev.PrevEventIDs()); err != nil {
				return 0, err
			}
			nids[ev.ID()] = nid
			return nid, nil
		}
		for _, ev := range order {
			if accepted[ev.ID()] == nil || nids[ev.ID()] != 0 {
				continue
			}
			if _, err := insert(ev, storage.EventRecord{Outlier: true}); err != nil {
				return err
			}
		}
		// The state before the join, in full, then the join over it.
		var entries []storage.StateEntry
		for t, ev := range stateMap {
			k, err := ti.key(ctx, tx, t)
			if err != nil {
				return err
			}
			entries = append(entries, storage.StateEntry{Key: k, Event: nids[ev.ID()]})
		}
		before, err := tx.CreateSnapshot(ctx, roomNID, 0, entries)
		if err != nil {
			return err
		}
		if pos, err = tx.NextStreamPosition(ctx, "events"); err != nil {
			return err
		}
		joinNID, err := insert(join, storage.EventRecord{StreamPos: pos, StateBefore: before, StateAfter: before})
		if err != nil {
			return err
		}
		if err := indexEvent(ctx, tx, roomNID, join, joinNID, pos); err != nil {
			return err
		}
		joinTuple, _ := join.Tuple()
		joinKey, err := ti.key(ctx, tx, joinTuple)
		if err != nil {
			return err
		}
		joinEntry := storage.StateEntry{Key: joinKey, Event: joinNID}
		after, err := tx.CreateSnapshot(ctx, roomNID, before, []storage.StateEntry{joinEntry})
		if err != nil {
			return err
		}
		if err := tx.SetStateAfter(ctx, joinNID, after); err != nil {
			return err
		}

		// The current state becomes the state after the join, replacing what this server
		// knew of the room before.
		current := map[storage.StateKey]storage.EventNID{}
		for _, e := range entries {
			current[e.Key] = e.Event
		}
		current[joinKey] = joinNID
		old, err := storage.CurrentState(ctx, tx, roomNID)
		if err != nil {
			return err
		}
		var delta []storage.StateEntry
		for _, e := range old {
			if _, ok := current[e.Key]; !ok {
				delta = append(delta, storage.StateEntry{Key: e.Key})
			}
		}
		for k, n := range current {
			delta = append(delta, storage.StateEntry{Key: k, Event: n})
		}
		if err := tx.UpdateCurrentState(ctx, roomNID, delta); err != nil {
			return err
		}
		if err := tx.SetCurrentSnapshot(ctx, roomNID, after); err != nil {
			return err
		}
		oldExt, err := storage.ForwardExtremities(ctx, tx, roomNID)
		if err != nil {
			return err
		}
		if err := tx.UpdateForwardExtremities(ctx, roomNID, joinNID, oldExt); err != nil {
			return err
		}
		for t, ev := range stateMap {
			if t.Type == auth.TypeMember && t.StateKey != userOf(join) {
				if err := setMembership(ctx, tx, roomNID, ev, nids[ev.ID()], pos); err != nil {
					return err
				}
			}
		}
		if err := recordJoinGap(ctx, tx, roomNID, join); err != nil {
			return err
		}
		return setMembership(ctx, tx, roomNID, join, joinNID, pos)
	})
	if err != nil {
		return err
	}
	ti.committed()
	s.mu.Lock()
	s.roomVersions[roomNID] = v
	s.mu.Unlock()
	slot.state = nil // read afresh from storage by the next writer
	s.notify(NewEvent{RoomID: roomID, Event: join, StreamPos: pos, RoomNID: roomNID})
	return nil
}

func userOf(ev *event.Event) string {
	if ev.StateKey() == nil {
		return ""
	}
	return *ev.StateKey()
}

// authOrder orders events so that each comes after those of its auth events that are among
// them; events caught in an auth cycle are left out.
func authOrder(byID map[string]*event.Event) []*event.Event {
	const (
		visiting = 1
		done     = 2
	)
	mark := map[string]int{}
	var out []*event.Event
	var visit func(ev *event.Event) bool
	visit = func(ev *event.Event) bool {
		switch mark[ev.ID()] {
		case visiting:
			return false
		case done:
			return true
		}
		mark[ev.ID()] = visiting
		for _, id := range ev.AuthEventIDs() {
			if a := byID[id]; a != nil && !visit(a) {
				return false
			}
		}
		mark[ev.ID()] = done
		out = append(out, ev)
		return true
	}
	ids := make([]string, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	// A stable order (by depth, then id) makes imports reproducible.
	slices.SortFunc(ids, func(a, b string) int {
		if d := byID[a].Depth() - byID[b].Depth(); d != 0 {
			if d < 0 {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	for _, id := range ids {
		visit(byID[id])
	}
	return out
}

// leaveRemote makes a local user leave a room this server is not in: rejecting an invite from
// another server, or withdrawing a knock, through make_leave and send_leave with the inviting
// server or another server in the room. handled is false when this server is in the room, so
// that the leave is a local event. When no server can be reached the rejection is local only:
// a pending remote invite is forgotten here (the inviting server never learns of it), and an
// invite in a room whose state this server still has is answered with a local leave event,
// queued for the room's servers.
func (s *Server) leaveRemote(ctx context.Context, roomID, userID, reason string) (ev *event.Event, handled bool, err error) {
	in, err := s.participating(ctx, roomID)
	if err != nil || in {
		return nil, false, err
	}
	known, err := s.roomKnown(ctx, roomID)
	if err != nil {
		return nil, true, err
	}
	hasInvite := false
	invites, err := s.RemoteInvites(ctx, userID, 0, 0)
	if err != nil {
		return nil, true, err
	}
	for _, inv := range invites {
		hasInvite = hasInvite || inv.RoomID == roomID
	}
	if !hasInvite && !known {
		return nil, true, fmt.Errorf("%w: %s has no invite to room %s", ErrNotFound, userID, roomID)
	}
	candidates, err := s.candidates(ctx, roomID, userID, nil)
	if err != nil {
		return nil, true, err
	}
	var errs []error
	for _, server := range candidates {
		ev, err := s.leaveThrough(ctx, server, roomID, userID, reason)
		if err == nil {
			return ev, true, s.ForgetRemoteInvite(ctx, userID, roomID)
		}
		errs = append(errs, fmt.Errorf("%s: %w", server, err))
		if ctx.Err() != nil {
			return nil, true, err
		}
	}
	if len(errs) > 0 {
		if err := remoteFailure(errs); !errors.Is(err, ErrRemoteFailed) {
			return nil, true, err // every server refused: there is nothing to leave
		}
	}
	// No one could be reached.
	if hasInvite {
		return nil, true, s.ForgetRemoteInvite(ctx, userID, roomID)
	}
	return nil, false, nil
}

func (s *Server) leaveThrough(ctx context.Context, server, roomID, userID, reason string) (*event.Event, error) {
	ctx, cancel := context.WithTimeout(ctx, remoteTimeout)
	defer cancel()
	ev, _, err := s.remoteTemplate(ctx, server, "leave", roomID, userID, reasonContent(reason))
	if err != nil {
		return nil, err
	}
	if err := s.opts.Federation.SendLeave(ctx, server, ev); err != nil {
		return nil, err
	}
	return ev, nil
}

// knockRemote knocks on a room this server is not in, through make_knock and send_knock.
func (s *Server) knockRemote(ctx context.Context, roomID, userID, reason string, via []string) (*event.Event, error) {
	candidates, err := s.candidates(ctx, roomID, userID, via)
	if err != nil {
		return nil, err
	}
	if len(candidates) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrRemoteJoinUnsupported, roomID)
	}
	extra := reasonContent(reason)
	var errs []error
	for _, server := range candidates {
		ev, err := func() (*event.Event, error) {
			ctx, cancel := context.WithTimeout(ctx, remoteTimeout)
			defer cancel()
			ev, _, err := s.remoteTemplate(ctx, server, "knock", roomID, userID, extra)
			if err != nil {
				return nil, err
			}
			if _, err := s.opts.Federation.SendKnock(ctx, server, ev); err != nil {
				return nil, err
			}
			return ev, nil
		}()
		if err == nil {
			return ev, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", server, err))
	}
	return nil, remoteFailure(errs)
}

// inviteRemote invites a user of another server: the invite is built and authorised here, then
// countersigned by the invitee's server (PUT /invite), and the countersigned event is what
// enters the room. Nothing is stored when the invitee's server refuses or cannot be reached.
func (s *Server) inviteRemote(ctx context.Context, roomID, sender, target, reason string, extra map[string]any) (*event.Event, error) {
	u, err := event.ParseUserID(target)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	var ev *event.Event
	err = s.withRoom(ctx, roomID, func(w *roomWork) error {
		var err error
		if ev, err = s.addLocal(ctx, w, memberProto(sender, target, "invite", reason, extra)); err != nil {
			return err
		}
		stripped, err := s.inviteRoomState(ctx, w, sender)
		if err != nil {
			return err
		}
		// The room's lock is held while the invitee's server answers, so that the invite's
		// prev events are still the room's extremities when it is stored.
		cctx, cancel := context.WithTimeout(ctx, remoteTimeout)
		defer cancel()
		signed, err := s.opts.Federation.SendInvite(cctx, string(u.Domain()), ev, stripped)
		if err != nil {
			return remoteFailure([]error{err})
		}
		if signed.ID() != ev.ID() || signed.Sender() != ev.Sender() || !signed.StateKeyEquals(target) {
			return fmt.Errorf("%w: %s returned another event than the invite", ErrRemoteFailed, u.Domain())
		}
		w.batch[len(w.batch)-1].ref.ev = signed
		ev = signed
		return nil
	})
	return ev, err
}

// strippedStateTypes are the state events an invitee's server is given to show the room
// (client-server API "Stripped state").
var strippedStateTypes = []string{"m.room.create", "m.room.name", "m.room.avatar", "m.room.topic",
	"m.room.join_rules", "m.room.canonical_alias", "m.room.encryption"}

// inviteRoomState is the invite_room_state of an invite: the stripped state events as PDUs of
// the room's version, and the inviter's membership.
func (s *Server) inviteRoomState(ctx context.Context, w *roomWork, sender string) ([]json.RawMessage, error) {
	var refs []*eventRef
	for _, typ := range strippedStateTypes {
		if r := w.get(event.StateTuple{Type: typ}); r != nil {
			refs = append(refs, r)
		}
	}
	if r := w.get(event.StateTuple{Type: auth.TypeMember, StateKey: sender}); r != nil {
		refs = append(refs, r)
	}
	if err := s.load(ctx, refs...); err != nil {
		return nil, err
	}
	out := make([]json.RawMessage, len(refs))
	for i, r := range refs {
		out[i] = r.ev.JSON()
	}
	return out, nil
}
