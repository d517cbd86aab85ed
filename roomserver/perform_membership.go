package roomserver

import (
	"context"
	"errors"
	"fmt"

	"myelin/roomserver/auth"
	"myelin/roomserver/event"
	"myelin/storage"
)

// Join makes a local user join a room: JoinVia without hints (perform_remote.go). A room this
// server is not in is joined over federation; ErrRemoteJoinUnsupported when there is no
// server to ask.
func (s *Server) Join(ctx context.Context, roomID, userID string) (*event.Event, error) {
	return s.JoinVia(ctx, roomID, userID, "", nil)
}

// Leave makes a local user leave a room, or reject an invite, or withdraw a knock; through
// another server when this server is not in the room (perform_remote.go). A non-empty reason
// goes into the membership event's content.
func (s *Server) Leave(ctx context.Context, roomID, userID, reason string) (*event.Event, error) {
	if s.opts.Federation != nil && s.isLocalUser(userID) {
		if ev, handled, err := s.leaveRemote(ctx, roomID, userID, reason); handled {
			return ev, err
		}
	}
	return s.sendMembership(ctx, roomID, userID, userID, "leave", reason, nil)
}

// Invite invites target on behalf of sender. isDirect marks the invite as a direct chat.
func (s *Server) Invite(ctx context.Context, roomID, sender, target, reason string, isDirect bool) (*event.Event, error) {
	var extra map[string]any
	if isDirect {
		extra = map[string]any{"is_direct": true}
	}
	if s.opts.Federation != nil && s.isLocalUser(sender) && !s.isLocalUser(target) {
		return s.inviteRemote(ctx, roomID, sender, target, reason, extra)
	}
	return s.sendMembership(ctx, roomID, sender, target, "invite", reason, extra)
}

// Kick makes target leave on behalf of sender.
func (s *Server) Kick(ctx context.Context, roomID, sender, target, reason string) (*event.Event, error) {
	if sender == target {
		return nil, fmt.Errorf("%w: a user cannot kick themselves", ErrInvalid)
	}
	return s.sendMembership(ctx, roomID, sender, target, "leave", reason, nil)
}

// Ban bans target on behalf of sender.
func (s *Server) Ban(ctx context.Context, roomID, sender, target, reason string) (*event.Event, error) {
	return s.sendMembership(ctx, roomID, sender, target, "ban", reason, nil)
}

// Unban lifts the ban of target: their membership becomes "leave".
func (s *Server) Unban(ctx context.Context, roomID, sender, target, reason string) (*event.Event, error) {
	var ev *event.Event
	err := s.withRoom(ctx, roomID, func(w *roomWork) error {
		m, err := s.membershipOf(ctx, w, target)
		if err != nil {
			return err
		}
		if m != "ban" {
			return fmt.Errorf("%w: %s is not banned", ErrNotAllowed, target)
		}
		ev, err = s.addLocal(ctx, w, memberProto(sender, target, "leave", reason, nil))
		return err
	})
	return ev, err
}

// Knock asks to join a room whose join rule is "knock".
func (s *Server) Knock(ctx context.Context, roomID, userID, reason string) (*event.Event, error) {
	if s.opts.Federation != nil && s.isLocalUser(userID) {
		if in, err := s.participating(ctx, roomID); err != nil {
			return nil, err
		} else if !in {
			return s.knockRemote(ctx, roomID, userID, reason, nil)
		}
	}
	ev, err := s.sendMembership(ctx, roomID, userID, userID, "knock", reason, nil)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrRemoteJoinUnsupported, roomID)
	}
	return ev, err
}

func (s *Server) sendMembership(ctx context.Context, roomID, sender, target, membership, reason string, extra map[string]any) (*event.Event, error) {
	if _, err := event.ParseUserID(target); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if !s.isLocalUser(sender) {
		return nil, fmt.Errorf("%w: sender %q is not a user of this server", ErrInvalid, sender)
	}
	var ev *event.Event
	err := s.withRoom(ctx, roomID, func(w *roomWork) error {
		if membership == "leave" && sender != target {
			m, err := s.membershipOf(ctx, w, target)
			if err != nil {
				return err
			}
			if m == "ban" {
				// A kick of a banned user would be an unban; that needs Unban's intent.
				return fmt.Errorf("%w: %s is banned; unban instead", ErrNotAllowed, target)
			}
		}
		if membership == "join" || membership == "knock" {
			var err error
			if extra, err = s.withProfile(ctx, target, extra); err != nil {
				return err
			}
		}
		var err error
		ev, err = s.addLocal(ctx, w, memberProto(sender, target, membership, reason, extra))
		return err
	})
	return ev, err
}

// withProfile adds a local user's display name and avatar to the content of their own
// membership event, as clients expect to find them there; fields the caller set are kept.
func (s *Server) withProfile(ctx context.Context, userID string, extra map[string]any) (map[string]any, error) {
	if !s.isLocalUser(userID) {
		return extra, nil
	}
	uid, err := event.ParseUserID(userID)
	if err != nil {
		return extra, nil
	}
	p, err := storage.GetProfile(ctx, s.db, uid.Local())
	if err != nil {
		return nil, err
	}
	out := make(map[string]any, len(extra)+2)
	if p.DisplayName != "" {
		out["displayname"] = p.DisplayName
	}
	if p.AvatarURL != "" {
		out["avatar_url"] = p.AvatarURL
	}
	for k, v := range extra {
		out[k] = v
	}
	return out, nil
}

func memberProto(sender, target, membership, reason string, extra map[string]any) event.Proto {
	content := map[string]any{"membership": membership}
	if reason != "" {
		content["reason"] = reason
	}
	for k, v := range extra {
		content[k] = v
	}
	return event.Proto{Type: auth.TypeMember, StateKey: &target, Sender: sender, Content: mustJSON(content)}
}

// membershipOf is a user's membership in the room's working state, "" if none.
func (s *Server) membershipOf(ctx context.Context, w *roomWork, userID string) (string, error) {
	r := w.get(event.StateTuple{Type: auth.TypeMember, StateKey: userID})
	if r == nil {
		return "", nil
	}
	if err := s.load(ctx, r); err != nil {
		return "", err
	}
	m, _ := r.ev.Membership()
	return m, nil
}
