package federation

import (
	"context"
	"errors"
	"net/http"

	"github.com/gorilla/mux"

	"myelin/keys/e2e"
	"myelin/mxhttp"
	"myelin/roomserver/event"
	"myelin/storage"
)

// The user-level endpoints of the server-server API: a local user's devices and keys for
// another server (/user/devices, /user/keys/query, /user/keys/claim), and the profile query.

// UserKeyStore answers other servers' key requests about local users; *e2e.Store is one.
type UserKeyStore interface {
	QueryLocal(ctx context.Context, want map[string][]string) (e2e.QueryResult, error)
	ClaimLocal(ctx context.Context, want map[string]map[string]string) (e2e.ClaimResult, error)
	LocalUserDevices(ctx context.Context, userID string) (e2e.UserDevices, error)
}

var _ UserKeyStore = (*e2e.Store)(nil)

// userRoutes registers the key endpoints; without Config.UserKeys they answer M_UNRECOGNIZED.
func (s *Server) userRoutes(r *mux.Router) {
	if s.cfg.UserKeys == nil {
		return
	}
	const v1 = "/_matrix/federation/v1"
	mxhttp.Route(r, v1+"/user/devices/{userID}").Handler(s.authed(s.userDevices)).Methods(http.MethodGet)
	mxhttp.Route(r, v1+"/user/keys/query").Handler(s.authed(s.userKeysQuery)).Methods(http.MethodPost)
	mxhttp.Route(r, v1+"/user/keys/claim").Handler(s.authed(s.userKeysClaim)).Methods(http.MethodPost)
}

// localUser parses userID and checks that it is a user of this server.
func (s *Server) localUser(userID string) error {
	u, err := event.ParseUserID(userID)
	if err != nil {
		return mxhttp.InvalidParam("%q is not a user id", userID)
	}
	if string(u.Domain()) != s.cfg.ServerName {
		return mxhttp.InvalidParam("%s is not a user of this server", userID)
	}
	return nil
}

// userDevices is GET /user/devices/{userId}.
func (s *Server) userDevices(r *http.Request) (mxhttp.Response, error) {
	userID, err := pathVar(r, "userID")
	if err != nil {
		return mxhttp.Response{}, err
	}
	if err := s.localUser(userID); err != nil {
		return mxhttp.Response{}, err
	}
	devs, err := s.cfg.UserKeys.LocalUserDevices(r.Context(), userID)
	if errors.Is(err, e2e.ErrNotFound) {
		return mxhttp.Response{}, mxhttp.NotFound("unknown user")
	}
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	return mxhttp.OK(devs), nil
}

// userKeysQuery is POST /user/keys/query. Users of other servers are left out.
func (s *Server) userKeysQuery(r *http.Request) (mxhttp.Response, error) {
	var req struct {
		DeviceKeys map[string][]string `json:"device_keys"`
	}
	if err := mxhttp.ReadJSON(r, &req); err != nil {
		return mxhttp.Response{}, err
	}
	if req.DeviceKeys == nil {
		return mxhttp.Response{}, mxhttp.MissingParam("device_keys is required")
	}
	res, err := s.cfg.UserKeys.QueryLocal(r.Context(), req.DeviceKeys)
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	return mxhttp.OK(map[string]any{
		"device_keys": res.DeviceKeys, "master_keys": res.MasterKeys, "self_signing_keys": res.SelfSigningKeys,
	}), nil
}

// userKeysClaim is POST /user/keys/claim. Users of other servers are left out.
func (s *Server) userKeysClaim(r *http.Request) (mxhttp.Response, error) {
	var req struct {
		OneTimeKeys map[string]map[string]string `json:"one_time_keys"`
	}
	if err := mxhttp.ReadJSON(r, &req); err != nil {
		return mxhttp.Response{}, err
	}
	if req.OneTimeKeys == nil {
		return mxhttp.Response{}, mxhttp.MissingParam("one_time_keys is required")
	}
	res, err := s.cfg.UserKeys.ClaimLocal(r.Context(), req.OneTimeKeys)
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	return mxhttp.OK(map[string]any{"one_time_keys": res.OneTimeKeys}), nil
}

// ProfileQuery answers GET /query/profile for Config.Queries["profile"]: the profile of a
// local user. When requireSharedRoom is set, only a server with a user joined to a room the
// user is joined to gets it; others get 403 M_FORBIDDEN, as a local stranger would.
func ProfileQuery(db *storage.DB, serverName string, requireSharedRoom bool) mxhttp.HandlerFunc {
	return func(r *http.Request) (mxhttp.Response, error) {
		ctx := r.Context()
		q := r.URL.Query()
		userID, field := q.Get("user_id"), q.Get("field")
		if userID == "" {
			return mxhttp.Response{}, mxhttp.MissingParam("user_id is required")
		}
		u, err := event.ParseUserID(userID)
		if err != nil || string(u.Domain()) != serverName {
			return mxhttp.Response{}, mxhttp.InvalidParam("%s is not a user of this server", userID)
		}
		if requireSharedRoom {
			shared, err := storage.ServerSharesRoom(ctx, db, userID, OriginFromContext(ctx))
			if err != nil {
				return mxhttp.Response{}, mxhttp.Internal(err)
			}
			if !shared {
				return mxhttp.Response{}, mxhttp.Forbidden("no user of your server shares a room with this user")
			}
		}
		acct, err := storage.GetAccount(ctx, db, u.Local())
		if errors.Is(err, storage.ErrNotFound) || err == nil && acct.DeactivatedTS != 0 {
			return mxhttp.Response{}, mxhttp.NotFound("profile not found")
		}
		if err != nil {
			return mxhttp.Response{}, mxhttp.Internal(err)
		}
		p, err := storage.GetProfile(ctx, db, u.Local())
		if err != nil {
			return mxhttp.Response{}, mxhttp.Internal(err)
		}
		// The whole profile: displayname, avatar_url, and m.tz and the custom fields (spec
		// v1.16), which the user set to be seen like the rest.
		out := map[string]any{}
		if p.DisplayName != "" {
			out["displayname"] = p.DisplayName
		}
		if p.AvatarURL != "" {
			out["avatar_url"] = p.AvatarURL
		}
		custom, err := storage.ProfileFields(ctx, db, u.Local())
		if err != nil {
			return mxhttp.Response{}, mxhttp.Internal(err)
		}
		for k, v := range custom {
			if k != "displayname" && k != "avatar_url" {
				out[k] = v
			}
		}
		if field == "" {
			return mxhttp.OK(out), nil
		}
		// With field, only that field; one that is not set is not found, as the spec allows.
		v, ok := out[field]
		if !ok {
			return mxhttp.Response{}, mxhttp.NotFound("the user has no %s", field)
		}
		return mxhttp.OK(map[string]any{field: v}), nil
	}
}
