package roomserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"myelin/keys"
	"myelin/roomserver/auth"
	"myelin/roomserver/event"
	"myelin/storage"
)

// What the room server does for other servers: templates for their users' membership events
// (make_join, make_leave, make_knock), accepting those events once signed (send_join,
// send_leave, send_knock), counter-signing invites of our users, and storing events whose
// place in the DAG is unknown as outliers.

// Errors of restricted joins (server-server API, "Restricted rooms").
var (
	// ErrUnableToAuthoriseJoin: none of the rooms of the join rule's allow list is known here,
	// so this server cannot tell whether the user may join.
	ErrUnableToAuthoriseJoin = errors.New("roomserver: unable to authorise a restricted join")
	// ErrUnableToGrantJoin: the user may join, but no user of this server may authorise it.
	ErrUnableToGrantJoin = errors.New("roomserver: unable to grant a restricted join")
)

// MembershipTemplate is an unsigned membership event for a user of another server to fill in,
// sign and send back.
type MembershipTemplate struct {
	RoomVersion event.RoomVersion
	Event       json.RawMessage
}

// MakeMembership builds the template of a membership event ("join", "leave" or "knock") of a
// user of another server, as make_join, make_leave and make_knock answer, after checking that
// the auth rules would allow it against the room's current state: ErrNotAllowed if not,
// ErrNotFound if the room is unknown.
func (s *Server) MakeMembership(ctx context.Context, roomID, userID, membership string) (MembershipTemplate, error) {
	if _, err := event.ParseUserID(userID); err != nil {
		return MembershipTemplate{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	rs, unlock, err := s.lockLoaded(ctx, roomID)
	if err != nil {
		return MembershipTemplate{}, err
	}
	defer unlock()
	if rs.state[createTuple] == nil {
		return MembershipTemplate{}, fmt.Errorf("%w: room %s", ErrNotFound, roomID)
	}
	v := rs.version
	content := map[string]any{"membership": membership}
	if membership == "join" {
		via, err := s.restrictedJoinVia(ctx, rs, userID)
		if err != nil {
			return MembershipTemplate{}, err
		}
		if via != "" {
			content["join_authorised_via_users_server"] = via
		}
	}
	p := event.Proto{Type: auth.TypeMember, StateKey: &userID, Sender: userID, RoomID: roomID,
		Content: mustJSON(content), OriginServerTS: s.opts.Now().UnixMilli()}
	var authRefs []*eventRef
	for _, t := range auth.StateNeededForAuth(p.Type, userID, userID, p.Content, v) {
		if r := rs.state[t]; r != nil {
			authRefs = append(authRefs, r)
		}
	}
	create := rs.state[createTuple]
	if err := s.load(ctx, append(slices.Clone(authRefs), create)...); err != nil {
		return MembershipTemplate{}, err
	}
	for _, r := range authRefs {
		p.AuthEvents = append(p.AuthEvents, r.id)
	}
	prev := sortedExtremities(rs.extremities)
	prev = prev[:min(len(prev), maxPrevEvents)]
	for _, r := range prev {
		p.PrevEvents = append(p.PrevEvents, r.id)
		p.Depth = max(p.Depth, r.depth)
	}
	p.Depth++
	// The event is built and signed by us only to run the auth rules over it; what is sent
	// is the template without hashes and signatures.
	ev, err := event.Build(p, v, s.serverName, s.key)
	if err != nil {
		return MembershipTemplate{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	state := auth.NewStateMap(create.ev)
	for _, r := range authRefs {
		state.Add(r.ev)
	}
	if err := auth.Check(ev, state); err != nil {
		return MembershipTemplate{}, fmt.Errorf("%w: %w", ErrNotAllowed, err)
	}
	o, err := keys.ParseObject(ev.JSON())
	if err != nil {
		return MembershipTemplate{}, err
	}
	o = o.Without("signatures", "hashes", "event_id", "unsigned").With("origin", keys.Quote(s.serverName))
	return MembershipTemplate{RoomVersion: v, Event: o.JSON()}, nil
}

// restrictedJoinVia decides a join of a user who is neither joined nor invited to a room
// whose join rule is restricted: the user must be joined to a room of the allow list that
// this server knows, and a user of ours who may invite vouches for the join. It returns ""
// when the join needs no voucher.
func (s *Server) restrictedJoinVia(ctx context.Context, rs *roomState, userID string) (string, error) {
	v := rs.version
	jr := rs.state[event.StateTuple{Type: auth.TypeJoinRules}]
	if jr == nil || !v.RestrictedJoins {
		return "", nil
	}
	if err := s.load(ctx, jr); err != nil {
		return "", err
	}
	var rules struct {
		JoinRule string `json:"join_rule"`
		Allow    []struct {
			Type   string `json:"type"`
			RoomID string `json:"room_id"`
		} `json:"allow"`
	}
	_ = json.Unmarshal(jr.ev.Content(), &rules)
	if rules.JoinRule != "restricted" && !(v.KnockRestricted && rules.JoinRule == "knock_restricted") {
		return "", nil
	}
	if m := rs.state[event.StateTuple{Type: auth.TypeMember, StateKey: userID}]; m != nil {
		if err := s.load(ctx, m); err != nil {
			return "", err
		}
		if ms, _ := m.ev.Membership(); ms == "join" || ms == "invite" {
			return "", nil
		}
	}
	known, allowed := false, false
	for _, a := range rules.Allow {
		if a.Type != "m.room_membership" || a.RoomID == "" {
			continue
		}
		if _, err := s.CurrentStateEvent(ctx, a.RoomID, auth.TypeCreate, ""); err != nil {
			if errors.Is(err, ErrNotFound) {
				continue
			}
			return "", err
		}
		known = true
		m, err := s.Membership(ctx, a.RoomID, userID)
		if err != nil {
			return "", err
		}
		if m == "join" {
			allowed = true
			break
		}
	}
	switch {
	case !known:
		return "", ErrUnableToAuthoriseJoin
	case !allowed:
		return "", fmt.Errorf("%w: %s is not in any room the join rule allows", ErrNotAllowed, userID)
	}
	create := rs.state[createTuple]
	pl := rs.state[event.StateTuple{Type: auth.TypePowerLevels}]
	if err := s.load(ctx, create, pl); err != nil {
		return "", err
	}
	var plEv *event.Event
	if pl != nil {
		plEv = pl.ev
	}
	levels, err := auth.NewPowerLevels(plEv, create.ev)
	if err != nil {
		return "", err
	}
	members, err := storage.RoomMembers(ctx, s.db, rs.nid, "join")
	if err != nil {
		return "", err
	}
	for _, m := range members {
		if s.isLocalUser(m) && levels.UserLevel(m) >= levels.InviteLevel() {
			return m, nil
		}
	}
	return "", ErrUnableToGrantJoin
}

// AcceptRemoteMembership takes a membership event of a user of another server made from a
// template (send_join, send_leave, send_knock) into the room. The caller has checked its
// signatures and content hash. A join authorised by one of our users is counter-signed first.
// It returns the event as stored. ErrNotAllowed if the auth rules refuse it against the state
// before it or the current state, ErrInvalid if it is not such a membership event.
func (s *Server) AcceptRemoteMembership(ctx context.Context, ev *event.Event, membership string) (*event.Event, error) {
	if ev.Type() != auth.TypeMember || !ev.StateKeyEquals(ev.Sender()) {
		return nil, fmt.Errorf("%w: not a membership event of its sender", ErrInvalid)
	}
	if m, err := ev.Membership(); err != nil || m != membership {
		return nil, fmt.Errorf("%w: membership is not %q", ErrInvalid, membership)
	}
	if membership == "join" {
		var c struct {
			Via string `json:"join_authorised_via_users_server"`
		}
		_ = json.Unmarshal(ev.Content(), &c)
		if c.Via != "" && s.isLocalUser(c.Via) {
			signed, err := event.HashAndSign(ev.JSON(), ev.Version(), s.serverName, s.key)
			if err != nil {
				return nil, err
			}
			if ev, err = event.Parse(signed, ev.Version()); err != nil {
				return nil, err
			}
		}
	}
	status, err := s.InputRemote(ctx, ev)
	var missing *MissingEventsError
	switch {
	case errors.As(err, &missing):
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	case errors.Is(err, ErrRejected):
		return nil, fmt.Errorf("%w: %w", ErrNotAllowed, err)
	case err != nil:
		return nil, err
	case status == SoftFailed:
		return nil, fmt.Errorf("%w: the event is not allowed by the current state of the room", ErrNotAllowed)
	case status == AlreadyKnown:
		rec, err := storage.EventByID(ctx, s.db, ev.ID())
		if err != nil {
			return nil, err
		}
		if rec.Rejected || rec.SoftFailed || rec.Outlier {
			return nil, fmt.Errorf("%w: the event was refused before", ErrNotAllowed)
		}
		return s.parse(rec)
	}
	return ev, nil
}

// ReceiveInvite counter-signs an invite of one of our users by a user of another server
// (PUT /invite). The caller has checked the inviting server's signature and the content
// hash. When this server is in the room, the invite must pass the auth rules against the
// current state, and arrives again in a transaction like any event. Otherwise it is kept,
// with the stripped state the inviting server sent (inviteState, a JSON list), until the user
// joins or rejects it, and shown through RemoteInvites. It returns the counter-signed event.
func (s *Server) ReceiveInvite(ctx context.Context, ev *event.Event, inviteState json.RawMessage) (*event.Event, error) {
	if ev.Type() != auth.TypeMember || ev.StateKey() == nil {
		return nil, fmt.Errorf("%w: not a membership event", ErrInvalid)
	}
	if m, err := ev.Membership(); err != nil || m != "invite" {
		return nil, fmt.Errorf("%w: membership is not invite", ErrInvalid)
	}
	target := *ev.StateKey()
	if !s.isLocalUser(target) {
		return nil, fmt.Errorf("%w: %s is not a user of this server", ErrInvalid, target)
	}
	signedJSON, err := event.HashAndSign(ev.JSON(), ev.Version(), s.serverName, s.key)
	if err != nil {
		return nil, err
	}
	signed, err := event.Parse(signedJSON, ev.Version())
	if err != nil {
		return nil, err
	}
	if _, err := s.CurrentStateEvent(ctx, ev.RoomID(), auth.TypeCreate, ""); err == nil {
		if err := s.checkCurrent(ctx, signed); err != nil {
			return nil, err
		}
		return signed, nil
	} else if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	if len(inviteState) == 0 {
		inviteState = json.RawMessage("[]")
	}
	var pos int64
	err = s.db.WithTx(ctx, func(tx *storage.Tx) error {
		var err error
		if pos, err = tx.NextStreamPosition(ctx, "events"); err != nil {
			return err
		}
		return tx.UpsertRemoteInvite(ctx, storage.RemoteInvite{
			UserID: target, RoomID: ev.RoomID(), RoomVersion: ev.Version().ID, EventID: ev.ID(),
			EventJSON: signed.JSON(), InviteState: inviteState, StreamPos: pos,
		})
	})
	if err != nil {
		return nil, err
	}
	// Subscribers hear of it so that the invitee's /sync wakes; the room is not one of ours.
	s.notify(NewEvent{RoomID: ev.RoomID(), Event: signed, StreamPos: pos})
	return signed, nil
}

// checkCurrent applies the auth rules to ev with the room's current state.
func (s *Server) checkCurrent(ctx context.Context, ev *event.Event) error {
	rs, unlock, err := s.lockLoaded(ctx, ev.RoomID())
	if err != nil {
		return err
	}
	defer unlock()
	if ev.Version().ID != rs.version.ID {
		return fmt.Errorf("%w: event of room version %s in a room of version %s", ErrInvalid, ev.Version().ID, rs.version.ID)
	}
	create := rs.state[createTuple]
	if err := s.load(ctx, create); err != nil {
		return err
	}
	if err := s.checkAgainst(ctx, ev, rs.state, create); err != nil {
		return fmt.Errorf("%w: %w", ErrNotAllowed, err)
	}
	return nil
}

// RemoteInvite is a pending invite of one of our users to a room this server is not in.
type RemoteInvite struct {
	RoomID      string
	RoomVersion string
	// Event is the invite as counter-signed by us.
	Event *event.Event
	// InviteState is the stripped state the inviting server sent: a JSON list of events.
	InviteState json.RawMessage
	StreamPos   int64
}

// RemoteInvites returns the pending invites of a user to rooms this server is not in with
// from < position <= to (to 0: no bound), in stream order.
func (s *Server) RemoteInvites(ctx context.Context, userID string, from, to int64) ([]RemoteInvite, error) {
	recs, err := storage.RemoteInvites(ctx, s.db, userID, from, to)
	if err != nil {
		return nil, err
	}
	out := make([]RemoteInvite, 0, len(recs))
	for _, rec := range recs {
		v, err := event.Version(rec.RoomVersion)
		if err != nil {
			continue
		}
		ev, err := event.Parse(rec.EventJSON, v)
		if err != nil {
			return nil, fmt.Errorf("roomserver: stored invite %s: %w", rec.EventID, err)
		}
		out = append(out, RemoteInvite{RoomID: rec.RoomID, RoomVersion: rec.RoomVersion, Event: ev,
			InviteState: rec.InviteState, StreamPos: rec.StreamPos})
	}
	return out, nil
}

// ForgetRemoteInvite drops the pending remote invite of a user to a room, once it was
// answered (joined or rejected) or retracted.
func (s *Server) ForgetRemoteInvite(ctx context.Context, userID, roomID string) error {
	return s.db.WithTx(ctx, func(tx *storage.Tx) error { return tx.DeleteRemoteInvite(ctx, userID, roomID) })
}

// ForwardExtremities returns the forward extremities of a room: the events federation asks
// other servers for missing events up to.
func (s *Server) ForwardExtremities(ctx context.Context, roomID string) ([]*event.Event, error) {
	room, err := s.room(ctx, s.db, roomID)
	if err != nil {
		return nil, err
	}
	nids, err := storage.ForwardExtremities(ctx, s.db, room.NID)
	if err != nil {
		return nil, err
	}
	recs, err := storage.EventsByNID(ctx, s.db, nids)
	if err != nil {
		return nil, err
	}
	return s.parseAll(recs)
}

// InputOutlier stores an event of a room this server is in whose prev events it does not
// have and could not get: the event is checked against its own auth events only (which must
// be stored: else a *MissingEventsError naming them), and stored outside the timeline, with
// no state, never a forward extremity. The caller has checked signatures and content hash.
// An event refused by its auth events is stored as a rejected outlier.
func (s *Server) InputOutlier(ctx context.Context, ev *event.Event) (InputStatus, error) {
	rs, unlock, err := s.lockLoaded(ctx, ev.RoomID())
	if err != nil {
		return 0, err
	}
	defer unlock()
	if known, err := s.admitRemote(ctx, rs, ev); err != nil {
		return 0, err
	} else if known {
		return AlreadyKnown, nil
	}
	authRecs, err := storage.EventsByID(ctx, s.db, ev.AuthEventIDs())
	if err != nil {
		return 0, err
	}
	if missing := missingIDs(ev.AuthEventIDs(), authRecs); len(missing) > 0 {
		return 0, &MissingEventsError{Auth: missing}
	}
	create := rs.state[createTuple]
	if err := s.load(ctx, create); err != nil {
		return 0, err
	}
	reason, authNIDs, err := s.checkAuthEvents(rs, create, ev, authRecs)
	if err != nil {
		return 0, err
	}
	ti := txInterner{in: &s.intern}
	var redacted []string
	err = s.db.WithTx(ctx, func(tx *storage.Tx) error {
		rec := storage.EventRecord{
			Room: rs.nid, EventID: ev.ID(), Type: ev.Type(), StateKey: ev.StateKey(), Sender: ev.Sender(),
			Depth: ev.Depth(), OriginServerTS: ev.OriginServerTS(), Rejected: reason != nil, Outlier: true, JSON: ev.JSON(),
		}
		if t, ok := ev.Tuple(); ok {
			key, err := ti.key(ctx, tx, t)
			if err != nil {
				return err
			}
			rec.TypeNID, rec.StateKeyNID = key.Type, key.StateKey
		}
		nid, err := tx.InsertEvent(ctx, rec)
		if err != nil {
			return err
		}
		if err := tx.InsertAuthEdges(ctx, nid, authNIDs); err != nil {
			return err
		}
		if err := tx.InsertPrevEdges(ctx, nid, ev.PrevEventIDs()); err != nil {
			return err
		}
		if reason == nil {
			if err := indexEvent(ctx, tx, rs.nid, ev, nid, 0); err != nil {
				return err
			}
			redacted, err = s.redactOnStore(ctx, tx, rs.nid, rs.version, create.ev, ev, true)
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	ti.committed()
	rs.dropRedactedBodies(redacted)
	if reason != nil {
		return Rejected, fmt.Errorf("%w: %w", ErrRejected, reason)
	}
	return Accepted, nil
}
