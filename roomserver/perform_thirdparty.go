package roomserver

import (
	"context"
	"encoding/json"
	"fmt"

	"myelin/roomserver/auth"
	"myelin/roomserver/event"
)

// Third-party invites (server-server API, "Third-party invites"). A user invites an e-mail
// address; the identity server that will learn whose address it is publishes a signing key,
// which the room keeps in an m.room.third_party_invite event whose state key is a token. When
// the address is bound to a Matrix user, the identity server signs {mxid, token} and tells
// that user's server, which asks the inviter's server to turn it into a real invite
// (exchange_third_party_invite). This server never talks to identity servers itself (it has no
// 3PIDs), but it takes part in that exchange on both sides, so its users can be invited by
// address from other servers' rooms and invite through them.

// InviteThirdParty sends the invite of target by sender (a local user, who sent the room's
// m.room.third_party_invite with the token that signed names) that a third-party invite turns
// into. thirdParty is the member event's content.third_party_invite: its signed block must
// carry a signature by one of the room's invite keys for that token, which the auth rules
// check. Without a display_name, the one of the m.room.third_party_invite event is used.
func (s *Server) InviteThirdParty(ctx context.Context, roomID, sender, target string, thirdParty json.RawMessage) (*event.Event, error) {
	var tpi map[string]json.RawMessage
	if err := json.Unmarshal(thirdParty, &tpi); err != nil || tpi["signed"] == nil {
		return nil, fmt.Errorf("%w: third_party_invite must be an object with signed", ErrInvalid)
	}
	var signed struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(tpi["signed"], &signed); err != nil || signed.Token == "" {
		return nil, fmt.Errorf("%w: third_party_invite.signed must have a token", ErrInvalid)
	}
	if _, ok := tpi["display_name"]; !ok {
		ev, err := s.CurrentStateEvent(ctx, roomID, auth.TypeThirdPartyInvite, signed.Token)
		if err != nil {
			return nil, err
		}
		var c struct {
			DisplayName json.RawMessage `json:"display_name"`
		}
		if json.Unmarshal(ev.Content(), &c) == nil && c.DisplayName != nil {
			tpi["display_name"] = c.DisplayName
		}
	}
	extra := map[string]any{"third_party_invite": tpi}
	if s.opts.Federation != nil && s.isLocalUser(sender) && !s.isLocalUser(target) {
		return s.inviteRemote(ctx, roomID, sender, target, "", extra)
	}
	return s.sendMembership(ctx, roomID, sender, target, "invite", "", extra)
}
