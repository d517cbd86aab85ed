package clientapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/gorilla/mux"
	"github.com/sirupsen/logrus"

	"myelin/mxhttp"
	"myelin/roomserver"
	"myelin/roomserver/event"
	"myelin/storage"
)

// Profiles (client-server API "Profiles"). A user's display name and avatar are shown to the
// user, and, when ProfileRequiresSharedRoom is set (the default), only to users who share a
// room with them: a profile says who someone is, and a stranger need not learn it. A change
// is copied into the user's membership event of every room they are joined to, as Synapse
// does, so that other members see it.
//
// Choices the spec leaves open:
//   - m.tz and custom fields (spec v1.16) are kept too (profile_fields.go), and shown like the
//     rest of the profile; only displayname and avatar_url are copied into membership events;
//   - a display name is at most maxDisplayNameLength bytes and an avatar must be an mxc:// URI;
//   - an anonymous request for a profile is refused when ProfileRequiresSharedRoom is set.

const (
	maxDisplayNameLength = 256
	maxAvatarURLLength   = 1024
)

// RemoteProfiles looks up the profile of another server's user (GET /query/profile). field is
// "" for the whole profile. Errors wrap roomserver.ErrNotFound or roomserver.ErrNotAllowed
// when the other server said so.
type RemoteProfiles interface {
	QueryProfile(ctx context.Context, userID, field string) (map[string]any, error)
}

func (a *API) profileRoutes(r *mux.Router) {
	open := func(path string, h authedFunc, methods ...string) {
		mxhttp.Route(r, "/_matrix/client/v3"+path).Handler(mxhttp.Handle(a.optionalAuth(h))).Methods(methods...)
	}
	handle := func(path string, h authedFunc, methods ...string) {
		mxhttp.Route(r, "/_matrix/client/v3"+path).Handler(mxhttp.Handle(a.authed(h))).Methods(methods...)
	}
	open("/profile/{userId}", a.getProfile, http.MethodGet)
	open("/profile/{userId}/{keyName}", a.getProfileField, http.MethodGet)
	handle("/profile/{userId}/{keyName}", a.putProfileField, http.MethodPut)
	handle("/profile/{userId}/{keyName}", a.deleteProfileField, http.MethodDelete)
}

// profileFields returns the fields of a profile that are set.
func profileFields(p storage.Profile) map[string]any {
	out := map[string]any{}
	if p.DisplayName != "" {
		out["displayname"] = p.DisplayName
	}
	if p.AvatarURL != "" {
		out["avatar_url"] = p.AvatarURL
	}
	return out
}

// lookupProfile returns the profile of userID as requester may see it; field "" for all.
func (a *API) lookupProfile(ctx context.Context, requester, userID, field string) (map[string]any, error) {
	u, err := event.ParseUserID(userID)
	if err != nil {
		return nil, mxhttp.InvalidParam("%q is not a user id", userID)
	}
	if a.cfg.ProfileRequiresSharedRoom && requester != userID {
		shared := false
		if requester != "" {
			if shared, err = storage.UsersShareRoom(ctx, a.db, requester, userID); err != nil {
				return nil, mxhttp.Internal(err)
			}
		}
		if !shared {
			return nil, mxhttp.Forbidden("you do not share a room with this user")
		}
	}
	if string(u.Domain()) != a.cfg.ServerName {
		if a.cfg.RemoteProfiles == nil {
			return nil, mxhttp.NotFound("profile not found")
		}
		fields, err := a.cfg.RemoteProfiles.QueryProfile(ctx, userID, field)
		switch {
		case errors.Is(err, roomserver.ErrNotFound):
			return nil, mxhttp.NotFound("profile not found")
		case errors.Is(err, roomserver.ErrNotAllowed):
			return nil, mxhttp.Forbidden("the user's server refused to share the profile")
		case err != nil:
			return nil, (&mxhttp.Error{Status: http.StatusBadGateway, Code: "M_UNKNOWN", Message: "the user's server could not be asked"}).Because(err)
		}
		return fields, nil
	}
	acct, err := storage.GetAccount(ctx, a.db, u.Local())
	if errors.Is(err, storage.ErrNotFound) || err == nil && acct.DeactivatedTS != 0 {
		return nil, mxhttp.NotFound("profile not found")
	}
	if err != nil {
		return nil, mxhttp.Internal(err)
	}
	fields, err := fullProfile(ctx, a.db, u.Local())
	if err != nil {
		return nil, mxhttp.Internal(err)
	}
	return fields, nil
}

// getProfile is GET /profile/{userId}.
func (a *API) getProfile(r *http.Request, who Requester) (mxhttp.Response, error) {
	userID, err := roomPathVar(r, "userId")
	if err != nil {
		return mxhttp.Response{}, err
	}
	fields, err := a.lookupProfile(r.Context(), who.UserID, userID, "")
	if err != nil {
		return mxhttp.Response{}, err
	}
	return mxhttp.OK(fields), nil
}

// getProfileField is GET /profile/{userId}/{keyName}.
func (a *API) getProfileField(r *http.Request, who Requester) (mxhttp.Response, error) {
	vars, err := pathVars(r, "userId", "keyName")
	if err != nil {
		return mxhttp.Response{}, err
	}
	userID, key := vars[0], vars[1]
	fields, err := a.lookupProfile(r.Context(), who.UserID, userID, key)
	if err != nil {
		return mxhttp.Response{}, err
	}
	v, ok := fields[key]
	if !ok {
		return mxhttp.Response{}, mxhttp.NotFound("the user has no %s", key)
	}
	return mxhttp.OK(map[string]any{key: v}), nil
}

// putProfileField is PUT /profile/{userId}/{keyName}.
func (a *API) putProfileField(r *http.Request, who Requester) (mxhttp.Response, error) {
	key, err := a.ownProfileKey(r, who)
	if err != nil {
		return mxhttp.Response{}, err
	}
	var body map[string]json.RawMessage
	if err := mxhttp.ReadJSON(r, &body); err != nil {
		return mxhttp.Response{}, err
	}
	raw, ok := body[key]
	if !ok {
		return mxhttp.Response{}, mxhttp.MissingParam("%s is required", key)
	}
	if isCustomProfileKey(key) {
		return a.setCustomProfileField(r.Context(), who, key, raw)
	}
	var value string
	if string(raw) != "null" && json.Unmarshal(raw, &value) != nil {
		return mxhttp.Response{}, mxhttp.InvalidParam("%s must be a string", key)
	}
	return a.setProfileField(r.Context(), who, key, value)
}

// deleteProfileField is DELETE /profile/{userId}/{keyName}.
func (a *API) deleteProfileField(r *http.Request, who Requester) (mxhttp.Response, error) {
	key, err := a.ownProfileKey(r, who)
	if err != nil {
		return mxhttp.Response{}, err
	}
	if isCustomProfileKey(key) {
		return a.deleteCustomProfileField(r.Context(), who, key)
	}
	return a.setProfileField(r.Context(), who, key, "")
}

func (a *API) ownProfileKey(r *http.Request, who Requester) (string, error) {
	v, err := pathVars(r, "userId", "keyName")
	if err != nil {
		return "", err
	}
	userID, key := v[0], v[1]
	if userID != who.UserID {
		return "", mxhttp.Forbidden("you can only change your own profile")
	}
	if err := checkProfileKey(key); err != nil {
		return "", err
	}
	return key, nil
}

func (a *API) setProfileField(ctx context.Context, who Requester, key, value string) (mxhttp.Response, error) {
	switch key {
	case "displayname":
		if len(value) > maxDisplayNameLength {
			return mxhttp.Response{}, mxhttp.InvalidParam("displayname is longer than %d bytes", maxDisplayNameLength)
		}
	case "avatar_url":
		if value != "" && (!strings.HasPrefix(value, "mxc://") || len(value) > maxAvatarURLLength) {
			return mxhttp.Response{}, mxhttp.InvalidParam("avatar_url must be an mxc:// URI")
		}
	}
	err := a.db.WithTx(ctx, func(tx *storage.Tx) error {
		var newValue any
		if value != "" {
			newValue = value
		}
		if err := checkProfileSize(ctx, tx, who.Localpart, key, newValue); err != nil {
			return err
		}
		if key == "displayname" {
			return tx.SetDisplayName(ctx, who.Localpart, value)
		}
		return tx.SetAvatarURL(ctx, who.Localpart, value)
	})
	if err != nil {
		return mxhttp.Response{}, mxhttp.AsError(err)
	}
	a.propagateProfile(context.WithoutCancel(ctx), who.UserID, key, value)
	return mxhttp.Empty(), nil
}

// propagateProfile copies a profile change into the user's membership event of every room
// they are joined to. The profile is stored already: a room that refuses is logged.
func (a *API) propagateProfile(ctx context.Context, userID, key, value string) {
	if a.cfg.Rooms == nil {
		return
	}
	log := mxhttp.Logger(ctx)
	rooms, err := a.cfg.Rooms.JoinedRooms(ctx, userID)
	if err != nil {
		log.WithError(err).Warn("could not list the rooms to update a profile in")
		return
	}
	for _, roomID := range rooms {
		rlog := log.WithFields(logrus.Fields{"room_id": roomID})
		ev, err := a.cfg.Rooms.CurrentStateEvent(ctx, roomID, "m.room.member", userID)
		if err != nil {
			rlog.WithError(err).Debug("no membership event to update the profile in")
			continue
		}
		var content map[string]json.RawMessage
		if json.Unmarshal(ev.Content(), &content) != nil || string(content["membership"]) != `"join"` {
			continue
		}
		if value == "" {
			delete(content, key)
		} else {
			content[key], _ = json.Marshal(value)
		}
		// A fresh membership event carries no reason or invite details of the old one.
		delete(content, "reason")
		raw, _ := json.Marshal(content)
		if string(raw) == string(ev.Content()) {
			continue
		}
		target := userID
		if _, err := a.cfg.Rooms.SendEvent(ctx, event.Proto{
			Type: "m.room.member", StateKey: &target, Sender: userID, RoomID: roomID, Content: raw,
		}); err != nil {
			rlog.WithError(err).Warn("could not update the profile in a room")
		}
	}
}

// MemberProfile is the displayname and avatar_url a local user's new membership event should
// carry: what the room server puts into a join it makes.
func MemberProfile(ctx context.Context, db *storage.DB, localpart string) (map[string]any, error) {
	p, err := storage.GetProfile(ctx, db, localpart)
	if err != nil {
		return nil, err
	}
	return profileFields(p), nil
}
