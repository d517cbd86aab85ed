package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/sirupsen/logrus"

	"myelin/keys"
	"myelin/roomserver"
	"myelin/roomserver/event"
)

// Outbound makes the room handshakes of the server-server API with other servers on behalf of
// the room server: make_join/send_join, make_leave/send_leave, make_knock/send_knock, invite,
// and room alias queries. Every event it returns has passed the receipt checks on signatures
// and content hashes (checkPDU); the auth rules are the room server's to apply.
type Outbound struct {
	client  Requester
	keyRing *KeyRing
	// checker applies the receipt checks shared with the inbound side.
	checker *Server
	log     *logrus.Entry
}

var _ roomserver.Federation = (*Outbound)(nil)

// NewOutbound returns the outbound side of room federation, verifying what it receives with
// keyRing.
func NewOutbound(client Requester, keyRing *KeyRing, log *logrus.Entry) *Outbound {
	log = log.WithField("component", "federation-outbound")
	return &Outbound{
		client:  client,
		keyRing: keyRing,
		checker: &Server{cfg: Config{KeyRing: keyRing}, log: log},
		log:     log,
	}
}

// remoteError maps another server's refusal to the room server's errors, so that the client
// hears "forbidden" or "not found" rather than a server error.
func remoteError(err error) error {
	var re *RemoteError
	if !errors.As(err, &re) {
		return err
	}
	switch {
	case re.Code == "M_INCOMPATIBLE_ROOM_VERSION" || re.Code == "M_UNSUPPORTED_ROOM_VERSION":
		return fmt.Errorf("%w: %w", roomserver.ErrInvalid, err)
	case re.Status == http.StatusForbidden:
		return fmt.Errorf("%w: %w", roomserver.ErrNotAllowed, err)
	case re.Status == http.StatusNotFound && re.Code != "M_UNRECOGNIZED":
		return fmt.Errorf("%w: %w", roomserver.ErrNotFound, err)
	}
	return err
}

// unrecognized says whether a server does not know an endpoint: 404, or 400 M_UNRECOGNIZED (the
// spec's fallback rule for v2 endpoints).
func unrecognized(err error) bool {
	var re *RemoteError
	return errors.As(err, &re) && (re.Status == http.StatusNotFound && (re.Code == "" || re.Code == "M_UNRECOGNIZED") ||
		re.Status == http.StatusBadRequest && re.Code == "M_UNRECOGNIZED")
}

// MakeMembership is GET /make_join, /make_leave or /make_knock.
func (o *Outbound) MakeMembership(ctx context.Context, server, membership, roomID, userID string, versions []string) (string, json.RawMessage, error) {
	uri := "/_matrix/federation/v1/make_" + membership + "/" + url.PathEscape(roomID) + "/" + url.PathEscape(userID)
	if membership == "join" || membership == "knock" {
		q := url.Values{"ver": versions}
		uri += "?" + q.Encode()
	} else if membership != "leave" {
		return "", nil, fmt.Errorf("%w: no make_%s", roomserver.ErrInvalid, membership)
	}
	var resp struct {
		RoomVersion string          `json:"room_version"`
		Event       json.RawMessage `json:"event"`
	}
	if err := o.client.Do(ctx, server, http.MethodGet, uri, nil, &resp); err != nil {
		return "", nil, remoteError(err)
	}
	if resp.RoomVersion == "" {
		resp.RoomVersion = "1" // the spec's default when a server omits it
	}
	if len(resp.Event) == 0 {
		return "", nil, fmt.Errorf("%s sent no event template", server)
	}
	return resp.RoomVersion, resp.Event, nil
}

type sendJoinAnswer struct {
	Origin    string            `json:"origin"`
	State     []json.RawMessage `json:"state"`
	AuthChain []json.RawMessage `json:"auth_chain"`
	Event     json.RawMessage   `json:"event"`
}

// SendJoin is PUT /v2/send_join, falling back to v1 for servers without it. The state and
// auth chain are checked like any received PDU; events that fail are left out, which makes
// the events that need them fail the room server's auth checks.
func (o *Outbound) SendJoin(ctx context.Context, server string, join *event.Event) (*roomserver.JoinedRoom, error) {
	path := "/send_join/" + url.PathEscape(join.RoomID()) + "/" + url.PathEscape(join.ID())
	var resp sendJoinAnswer
	err := o.client.Do(ctx, server, http.MethodPut, "/_matrix/federation/v2"+path, join.JSON(), &resp)
	if unrecognized(err) {
		var v1 []json.RawMessage // [200, {...}]
		if err = o.client.Do(ctx, server, http.MethodPut, "/_matrix/federation/v1"+path, join.JSON(), &v1); err == nil {
			if len(v1) != 2 {
				return nil, fmt.Errorf("%s: malformed v1 send_join answer", server)
			}
			if err := json.Unmarshal(v1[1], &resp); err != nil {
				return nil, fmt.Errorf("%s: malformed v1 send_join answer: %w", server, err)
			}
		}
	}
	if err != nil {
		return nil, remoteError(err)
	}
	v := join.Version()
	out := &roomserver.JoinedRoom{Origin: resp.Origin}
	out.State = o.checkAll(ctx, server, resp.State, v)
	out.AuthChain = o.checkAll(ctx, server, resp.AuthChain, v)
	if len(resp.Event) > 0 {
		if ev, err := o.checker.checkPDU(ctx, resp.Event, v); err == nil && ev.ID() == join.ID() {
			out.Event = ev
		} else if err != nil {
			o.log.WithError(err).WithField("destination", server).Debug("the join event returned by send_join fails the checks; keeping ours")
		}
	}
	return out, nil
}

// checkAll parses and checks PDUs, dropping (and logging) those that fail.
func (o *Outbound) checkAll(ctx context.Context, server string, raws []json.RawMessage, v event.RoomVersion) []*event.Event {
	out := make([]*event.Event, 0, len(raws))
	for _, raw := range raws {
		ev, err := o.checker.checkPDU(ctx, raw, v)
		if err != nil {
			o.log.WithError(err).WithFields(logrus.Fields{"destination": server, "event_id": pduEventID(raw)}).
				Warn("dropping an event of a join answer that fails the receipt checks")
			continue
		}
		out = append(out, ev)
	}
	return out
}

// SendLeave is PUT /v2/send_leave, falling back to v1.
func (o *Outbound) SendLeave(ctx context.Context, server string, leave *event.Event) error {
	path := "/send_leave/" + url.PathEscape(leave.RoomID()) + "/" + url.PathEscape(leave.ID())
	err := o.client.Do(ctx, server, http.MethodPut, "/_matrix/federation/v2"+path, leave.JSON(), nil)
	if unrecognized(err) {
		err = o.client.Do(ctx, server, http.MethodPut, "/_matrix/federation/v1"+path, leave.JSON(), nil)
	}
	return remoteError(err)
}

// SendKnock is PUT /v1/send_knock.
func (o *Outbound) SendKnock(ctx context.Context, server string, knock *event.Event) ([]json.RawMessage, error) {
	uri := "/_matrix/federation/v1/send_knock/" + url.PathEscape(knock.RoomID()) + "/" + url.PathEscape(knock.ID())
	var resp struct {
		KnockRoomState []json.RawMessage `json:"knock_room_state"`
	}
	if err := o.client.Do(ctx, server, http.MethodPut, uri, knock.JSON(), &resp); err != nil {
		return nil, remoteError(err)
	}
	return resp.KnockRoomState, nil
}

// SendInvite is PUT /v2/invite, falling back to v1 for rooms of version 1 and 2 as the spec
// allows. The returned event must be our invite, signed by us and by the invitee's server.
func (o *Outbound) SendInvite(ctx context.Context, server string, invite *event.Event, inviteRoomState []json.RawMessage) (*event.Event, error) {
	v := invite.Version()
	path := "/invite/" + url.PathEscape(invite.RoomID()) + "/" + url.PathEscape(invite.ID())
	if inviteRoomState == nil {
		inviteRoomState = []json.RawMessage{}
	}
	var resp struct {
		Event json.RawMessage `json:"event"`
	}
	err := o.client.Do(ctx, server, http.MethodPut, "/_matrix/federation/v2"+path, map[string]any{
		"room_version": v.ID, "event": json.RawMessage(invite.JSON()), "invite_room_state": inviteRoomState,
	}, &resp)
	var re *RemoteError
	if err != nil && (v.ID == "1" || v.ID == "2") && errors.As(err, &re) && (re.Status == http.StatusNotFound || re.Status == http.StatusBadRequest) {
		obj, perr := keys.ParseObject(invite.JSON())
		if perr != nil {
			return nil, perr
		}
		unsigned, _ := json.Marshal(map[string]any{"invite_room_state": inviteRoomState})
		var v1 []json.RawMessage
		if err = o.client.Do(ctx, server, http.MethodPut, "/_matrix/federation/v1"+path, obj.With("unsigned", unsigned).JSON(), &v1); err == nil {
			if len(v1) != 2 || json.Unmarshal(v1[1], &resp) != nil {
				return nil, fmt.Errorf("%s: malformed v1 invite answer", server)
			}
		}
	}
	if err != nil {
		return nil, remoteError(err)
	}
	signed, err := o.checker.checkPDU(ctx, resp.Event, v)
	if err != nil {
		return nil, fmt.Errorf("%s: the countersigned invite: %w", server, err)
	}
	if signed.ID() != invite.ID() {
		return nil, fmt.Errorf("%s returned another event than the invite", server)
	}
	if err := o.verifySignedBy(ctx, signed, server); err != nil {
		return nil, fmt.Errorf("%s: the countersigned invite: %w", server, err)
	}
	return signed, nil
}

// verifySignedBy checks that server signed ev, beyond the signatures every event needs.
func (o *Outbound) verifySignedBy(ctx context.Context, ev *event.Event, server string) error {
	redacted, err := event.Redact(ev.JSON(), ev.Version())
	if err != nil {
		return err
	}
	obj, err := keys.ParseObject(redacted)
	if err != nil {
		return err
	}
	sigs, err := keys.Signatures(obj, server)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPDUSignature, err)
	}
	ids := keys.Ed25519KeyIDs(sigs)
	if len(ids) == 0 {
		return fmt.Errorf("%w: not signed by %s", ErrPDUSignature, server)
	}
	var atTS int64
	if ev.Version().EnforceKeyValidity {
		atTS = ev.OriginServerTS()
	}
	for _, id := range ids {
		pub, err := o.keyRing.PublicKey(ctx, server, id, atTS)
		if err != nil {
			continue
		}
		if err := keys.VerifyObject(server, id, pub, obj); err != nil {
			return fmt.Errorf("%w: %w", ErrPDUSignature, err)
		}
		return nil
	}
	return fmt.Errorf("%w: no known key of %s", ErrPDUSignature, server)
}

// QueryDirectory is GET /query/directory: the room an alias names on its server, and servers
// in it to join through.
func (o *Outbound) QueryDirectory(ctx context.Context, alias string) (roomID string, servers []string, err error) {
	_, server, ok := cutAlias(alias)
	if !ok {
		return "", nil, fmt.Errorf("%w: %q is not a room alias", roomserver.ErrInvalid, alias)
	}
	var resp struct {
		RoomID  string   `json:"room_id"`
		Servers []string `json:"servers"`
	}
	uri := "/_matrix/federation/v1/query/directory?" + url.Values{"room_alias": {alias}}.Encode()
	if err := o.client.Do(ctx, server, http.MethodGet, uri, nil, &resp); err != nil {
		return "", nil, remoteError(err)
	}
	if _, err := event.ParseRoomID(resp.RoomID); err != nil {
		return "", nil, fmt.Errorf("%s answered with an invalid room id: %w", server, err)
	}
	return resp.RoomID, resp.Servers, nil
}

func cutAlias(alias string) (local, server string, ok bool) {
	if len(alias) < 3 || alias[0] != '#' {
		return "", "", false
	}
	for i := 1; i < len(alias); i++ {
		if alias[i] == ':' {
			return alias[1:i], alias[i+1:], i+1 < len(alias)
		}
	}
	return "", "", false
}
