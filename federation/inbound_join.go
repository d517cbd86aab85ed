package federation

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"sort"

	"myelin/mxhttp"
	"myelin/roomserver/auth"
	"myelin/roomserver/event"
)

// The membership handshakes a resident server serves: make_join/send_join, make_leave/
// send_leave (inbound_leave.go) and make_knock/send_knock (inbound_knock.go) share the
// handlers here.

// incompatibleRoomVersion is the 400 of make_join and make_knock for a room of a version the
// asking server did not list.
func incompatibleRoomVersion(v string) error {
	return (&mxhttp.Error{Status: http.StatusBadRequest, Code: "M_INCOMPATIBLE_ROOM_VERSION",
		Message: "your homeserver does not support the features required to take part in this room"}).With("room_version", v)
}

// makeMembership is GET make_join, make_leave and make_knock: a template of the membership
// event of a user of the origin. versions says how the ver query parameter is read:
// "default1" (make_join: absent means ["1"]), "required" (make_knock), "" (make_leave: none).
func (s *Server) makeMembership(membership, versions string) mxhttp.HandlerFunc {
	return func(r *http.Request) (mxhttp.Response, error) {
		rooms, err := s.rooms()
		if err != nil {
			return mxhttp.Response{}, err
		}
		roomID, err := pathVar(r, "roomID")
		if err != nil {
			return mxhttp.Response{}, err
		}
		userID, err := pathVar(r, "userID")
		if err != nil {
			return mxhttp.Response{}, err
		}
		ctx, origin := r.Context(), OriginFromContext(r.Context())
		u, err := event.ParseUserID(userID)
		if err != nil {
			return mxhttp.Response{}, mxhttp.InvalidParam("invalid user id")
		}
		if string(u.Domain()) != origin {
			return mxhttp.Response{}, mxhttp.Forbidden("%s is not a user of %s", userID, origin)
		}
		v, err := rooms.RoomVersion(ctx, roomID)
		if err != nil {
			return mxhttp.Response{}, roomError(err)
		}
		if versions != "" {
			vers := r.URL.Query()["ver"]
			if len(vers) == 0 && versions == "default1" {
				vers = []string{"1"}
			}
			if len(vers) == 0 {
				return mxhttp.Response{}, mxhttp.MissingParam("ver is required")
			}
			if !slices.Contains(vers, v.ID) {
				return mxhttp.Response{}, incompatibleRoomVersion(v.ID)
			}
		}
		if membership == "knock" && !v.Knocking {
			return mxhttp.Response{}, incompatibleRoomVersion(v.ID)
		}
		tmpl, err := rooms.MakeMembership(ctx, roomID, userID, membership)
		if err != nil {
			return mxhttp.Response{}, roomError(err)
		}
		return mxhttp.OK(map[string]any{"room_version": tmpl.RoomVersion.ID, "event": tmpl.Event}), nil
	}
}

// acceptMembership is the common part of send_join, send_leave and send_knock: the event in
// the body must be a valid, signed membership event of a user of the origin, of the room and
// with the id of the path; the room server then takes it into the room, and the other
// servers of the room are sent it.
func (s *Server) acceptMembership(r *http.Request, membership string) (*event.Event, error) {
	rooms, roomID, eventID, err := s.pathRoomEvent(r)
	if err != nil {
		return nil, err
	}
	ctx, origin := r.Context(), OriginFromContext(r.Context())
	v, err := rooms.RoomVersion(ctx, roomID)
	if err != nil {
		return nil, roomError(err)
	}
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, mxhttp.BadJSON("could not read request body")
	}
	ev, err := s.checkPDU(ctx, raw, v)
	if err != nil {
		return nil, pduError(err)
	}
	if err := checkEventForEndpoint(ev, origin, roomID, eventID); err != nil {
		return nil, err
	}
	if ev.Type() != auth.TypeMember || !ev.StateKeyEquals(ev.Sender()) {
		return nil, mxhttp.InvalidParam("the event must be an m.room.member event whose state_key is its sender")
	}
	if m, err := ev.Membership(); err != nil || m != membership {
		return nil, mxhttp.InvalidParam("the event's membership must be %q", membership)
	}
	accepted, err := rooms.AcceptRemoteMembership(ctx, ev, membership)
	if err != nil {
		return nil, roomError(err)
	}
	s.forward(ctx, accepted.ID(), origin)
	return accepted, nil
}

// forward passes an event another server gave us on to the rest of its room.
func (s *Server) forward(ctx context.Context, eventID, origin string) {
	if s.cfg.Forwarder == nil {
		return
	}
	if err := s.cfg.Forwarder.Forward(ctx, eventID, origin); err != nil {
		mxhttp.Logger(ctx).WithError(err).WithField("event_id", eventID).Warn("could not queue an event for the other servers of its room")
	}
}

// maxHeroes is how many members a room summary names (client-server API, m.heroes).
const maxHeroes = 5

// sendJoinResponse is the answer of send_join: the state before the join and the auth chain
// of it and of the join. With omitMembers, membership events are left out of the state except
// those of the room's heroes when the room has no name nor canonical alias, and events of
// the state are left out of the auth chain.
func (s *Server) sendJoinResponse(ctx context.Context, join *event.Event, omitMembers bool) (map[string]any, error) {
	state, _, err := s.cfg.Rooms.StateForFederation(ctx, join.RoomID(), join.ID())
	if err != nil {
		return nil, roomError(err)
	}
	resp := map[string]any{"origin": s.cfg.ServerName, "event": json.RawMessage(join.JSON())}
	if !omitMembers {
		chain, err := s.cfg.Rooms.AuthChain(ctx, append(eventIDs(state), join.ID()))
		if err != nil {
			return nil, mxhttp.Internal(err)
		}
		resp["state"], resp["auth_chain"] = pdus(state), pdus(chain)
		return resp, nil
	}
	var servers []string
	named := false
	var kept, members []*event.Event
	for _, ev := range state {
		switch ev.Type() {
		case "m.room.name", "m.room.canonical_alias":
			named = true
		case auth.TypeMember:
			if m, _ := ev.Membership(); m == "join" {
				if u, err := event.ParseUserID(*ev.StateKey()); err == nil && !slices.Contains(servers, string(u.Domain())) {
					servers = append(servers, string(u.Domain()))
				}
			}
			members = append(members, ev)
			continue
		}
		kept = append(kept, ev)
	}
	if !named {
		kept = append(kept, heroes(members, join.Sender())...)
	}
	chain, err := s.cfg.Rooms.AuthChain(ctx, append(eventIDs(kept), join.ID()))
	if err != nil {
		return nil, mxhttp.Internal(err)
	}
	inState := map[string]bool{}
	for _, ev := range kept {
		inState[ev.ID()] = true
	}
	chain = slices.DeleteFunc(chain, func(ev *event.Event) bool { return inState[ev.ID()] })
	sort.Strings(servers)
	resp["state"], resp["auth_chain"] = pdus(kept), pdus(chain)
	resp["members_omitted"] = true
	resp["servers_in_room"] = servers
	return resp, nil
}

// heroes picks the membership events of the members a room summary would name for the
// joining user: joined and invited members other than them, by user id.
func heroes(members []*event.Event, joiner string) []*event.Event {
	var out []*event.Event
	for _, ev := range members {
		if *ev.StateKey() == joiner {
			continue
		}
		if m, _ := ev.Membership(); m == "join" || m == "invite" {
			out = append(out, ev)
		}
	}
	slices.SortFunc(out, func(a, b *event.Event) int {
		switch {
		case *a.StateKey() < *b.StateKey():
			return -1
		case *a.StateKey() > *b.StateKey():
			return 1
		}
		return 0
	})
	return out[:min(len(out), maxHeroes)]
}

// sendJoinV2 is PUT /_matrix/federation/v2/send_join/{roomId}/{eventId}.
func (s *Server) sendJoinV2(r *http.Request) (mxhttp.Response, error) {
	join, err := s.acceptMembership(r, "join")
	if err != nil {
		return mxhttp.Response{}, err
	}
	resp, err := s.sendJoinResponse(r.Context(), join, r.URL.Query().Get("omit_members") == "true")
	if err != nil {
		return mxhttp.Response{}, err
	}
	return mxhttp.OK(resp), nil
}

// sendJoinV1 is PUT /_matrix/federation/v1/send_join/{roomId}/{eventId}: the v2 answer
// without the partial-state fields, wrapped in the historical [200, {...}].
func (s *Server) sendJoinV1(r *http.Request) (mxhttp.Response, error) {
	join, err := s.acceptMembership(r, "join")
	if err != nil {
		return mxhttp.Response{}, err
	}
	resp, err := s.sendJoinResponse(r.Context(), join, false)
	if err != nil {
		return mxhttp.Response{}, err
	}
	return mxhttp.OK([]any{http.StatusOK, resp}), nil
}
