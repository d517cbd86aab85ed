package federation

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"myelin/mxhttp"
	"myelin/roomserver"
	"myelin/roomserver/event"
)

// Third-party invites (see roomserver/perform_thirdparty.go for the whole exchange): an
// identity server tells the invitee's server that an address is now bound (PUT /3pid/onbind),
// and that server asks the inviter's server to issue the invite (PUT
// /exchange_third_party_invite/{roomId}). The identity server's signature over {mxid, token}
// is checked by the room's auth rules against the keys in the room's m.room.third_party_invite
// event, so nothing here has to trust the caller of /3pid/onbind, which is not authenticated.

// maxOnBindInvites bounds the invites one /3pid/onbind call makes this server exchange, so that
// an unauthenticated caller cannot make it send many requests.
const maxOnBindInvites = 20

// thirdPartyInviter is the room server's side of the exchange.
type thirdPartyInviter interface {
	InviteThirdParty(ctx context.Context, roomID, sender, target string, thirdParty json.RawMessage) (*event.Event, error)
}

// thirdPartyRequest is the partial m.room.member event of exchange_third_party_invite.
type thirdPartyRequest struct {
	Type     string `json:"type"`
	RoomID   string `json:"room_id"`
	Sender   string `json:"sender"`
	StateKey string `json:"state_key"`
	Content  struct {
		Membership       string          `json:"membership"`
		ThirdPartyInvite json.RawMessage `json:"third_party_invite"`
	} `json:"content"`
}

// exchangeThirdPartyInvite is PUT /_matrix/federation/v1/exchange_third_party_invite/{roomId},
// asked of the inviter's server by the invitee's (the origin).
func (s *Server) exchangeThirdPartyInvite(r *http.Request) (mxhttp.Response, error) {
	roomID, err := pathVar(r, "roomID")
	if err != nil {
		return mxhttp.Response{}, err
	}
	var req thirdPartyRequest
	if err := mxhttp.ReadJSON(r, &req); err != nil {
		return mxhttp.Response{}, err
	}
	origin := OriginFromContext(r.Context())
	if err := s.checkThirdPartyRequest(req, roomID, origin); err != nil {
		return mxhttp.Response{}, err
	}
	if err := s.issueThirdPartyInvite(r.Context(), req); err != nil {
		return mxhttp.Response{}, err
	}
	return mxhttp.Empty(), nil
}

// checkThirdPartyRequest checks the partial event: an invite in the room of the path, sent by a
// user of this server (who must sign it), for a user of the requesting server, with a signed
// block that names that user.
func (s *Server) checkThirdPartyRequest(req thirdPartyRequest, roomID, origin string) error {
	switch {
	case req.Type != "m.room.member":
		return mxhttp.InvalidParam("type must be m.room.member")
	case req.RoomID != roomID:
		return mxhttp.InvalidParam("room_id does not match the path")
	case req.Content.Membership != "invite":
		return mxhttp.InvalidParam("content.membership must be invite")
	case len(req.Content.ThirdPartyInvite) == 0 || req.Content.ThirdPartyInvite[0] != '{':
		return mxhttp.BadJSON("content.third_party_invite must be an object")
	}
	sender, err := event.ParseUserID(req.Sender)
	if err != nil || string(sender.Domain()) != s.cfg.ServerName {
		return mxhttp.Forbidden("the sender of the invite must be a user of this server")
	}
	target, err := event.ParseUserID(req.StateKey)
	if err != nil {
		return mxhttp.InvalidParam("state_key must be a user id")
	}
	if origin != "" && string(target.Domain()) != origin {
		return mxhttp.Forbidden("the invitee must be a user of the requesting server")
	}
	var tpi struct {
		Signed struct {
			MXID string `json:"mxid"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(req.Content.ThirdPartyInvite, &tpi); err != nil || tpi.Signed.MXID != req.StateKey {
		return mxhttp.InvalidParam("third_party_invite.signed.mxid must be the invitee")
	}
	return nil
}

// issueThirdPartyInvite has the room server send the invite; the auth rules check the identity
// server's signature.
func (s *Server) issueThirdPartyInvite(ctx context.Context, req thirdPartyRequest) error {
	rooms, err := s.rooms()
	if err != nil {
		return err
	}
	inviter, ok := rooms.(thirdPartyInviter)
	if !ok {
		return mxhttp.Unrecognized("this server does not exchange third-party invites")
	}
	_, err = inviter.InviteThirdParty(ctx, req.RoomID, req.Sender, req.StateKey, req.Content.ThirdPartyInvite)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, roomserver.ErrNotFound):
		return mxhttp.NotFound("unknown room or third-party invite")
	case errors.Is(err, roomserver.ErrNotAllowed):
		return mxhttp.Forbidden("the third-party invite is not valid: %v", err)
	case errors.Is(err, roomserver.ErrInvalid):
		return mxhttp.InvalidParam("%v", err)
	default:
		return err
	}
}

// onBind is PUT /_matrix/federation/v1/3pid/onbind: an identity server says that an address
// was bound to one of our users and lists the invites waiting for it. Each is exchanged with
// the inviter's server (or issued here, when the inviter is ours). Invites that fail are logged
// and skipped: the identity server cannot act on them.
func (s *Server) onBind(r *http.Request) (mxhttp.Response, error) {
	var req struct {
		Medium  *string `json:"medium"`
		Address *string `json:"address"`
		MXID    *string `json:"mxid"`
		Invites *[]struct {
			MXID   string          `json:"mxid"`
			RoomID string          `json:"room_id"`
			Sender string          `json:"sender"`
			Signed json.RawMessage `json:"signed"`
		} `json:"invites"`
	}
	if err := mxhttp.ReadJSON(r, &req); err != nil {
		return mxhttp.Response{}, err
	}
	if req.Medium == nil || req.Address == nil || req.MXID == nil || req.Invites == nil {
		return mxhttp.Response{}, mxhttp.BadJSON("medium, address, mxid and invites are required")
	}
	user, err := event.ParseUserID(*req.MXID)
	if err != nil || string(user.Domain()) != s.cfg.ServerName {
		return mxhttp.Response{}, mxhttp.InvalidParam("mxid must be a user of this server")
	}
	if len(*req.Invites) > maxOnBindInvites {
		return mxhttp.Response{}, mxhttp.InvalidParam("at most %d invites at once", maxOnBindInvites)
	}
	ctx := r.Context()
	log := mxhttp.Logger(ctx)
	for _, inv := range *req.Invites {
		if inv.MXID != *req.MXID || !strings.HasPrefix(inv.RoomID, "!") || len(inv.Signed) == 0 {
			log.WithField("room_id", inv.RoomID).Info("skipping a malformed third-party invite")
			continue
		}
		partial := thirdPartyRequest{Type: "m.room.member", RoomID: inv.RoomID, Sender: inv.Sender, StateKey: inv.MXID}
		partial.Content.Membership = "invite"
		partial.Content.ThirdPartyInvite, _ = json.Marshal(map[string]json.RawMessage{"signed": inv.Signed})
		if err := s.exchangeFor(ctx, partial); err != nil {
			log.WithError(err).WithField("room_id", inv.RoomID).Info("could not exchange a third-party invite")
		}
	}
	return mxhttp.Empty(), nil
}

// exchangeFor issues the invite here when the inviter is ours, else asks the inviter's server.
func (s *Server) exchangeFor(ctx context.Context, partial thirdPartyRequest) error {
	sender, err := event.ParseUserID(partial.Sender)
	if err != nil {
		return err
	}
	if string(sender.Domain()) == s.cfg.ServerName {
		if err := s.checkThirdPartyRequest(partial, partial.RoomID, ""); err != nil {
			return err
		}
		return s.issueThirdPartyInvite(ctx, partial)
	}
	if s.cfg.Remote == nil {
		return errors.New("no outbound federation")
	}
	uri := "/_matrix/federation/v1/exchange_third_party_invite/" + url.PathEscape(partial.RoomID)
	return s.cfg.Remote.Do(ctx, string(sender.Domain()), http.MethodPut, uri, partial, nil)
}
