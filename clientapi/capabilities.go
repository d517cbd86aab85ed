package clientapi

import (
	"net/http"

	"myelin/mxhttp"
	"myelin/roomserver/event"
)

// capabilities is GET /capabilities. Password changes work; profile changes are allowed (their
// endpoints belong to the profile area); third-party identifiers are not supported, and neither
// is generating login tokens. Administrators are told they may suspend and lock accounts
// (m.account_moderation, v1.18); for everyone else the spec has the capability omitted.
func (a *API) capabilities(r *http.Request, who Requester) (mxhttp.Response, error) {
	available := map[string]string{}
	for _, id := range event.Versions() {
		stability := "unstable"
		if event.MustVersion(id).Stable {
			stability = "stable"
		}
		available[id] = stability
	}
	enabled := func(b bool) map[string]bool { return map[string]bool{"enabled": b} }
	caps := map[string]any{
		"m.change_password": enabled(true),
		"m.room_versions":   map[string]any{"default": a.cfg.DefaultRoomVersion, "available": available},
		"m.set_displayname": enabled(true),
		"m.set_avatar_url":  enabled(true),
		"m.profile_fields":  enabled(true),
		"m.3pid_changes":    enabled(false),
		"m.get_login_token": enabled(false),
	}
	admin, err := a.isAdmin(r.Context(), who)
	if err != nil {
		return mxhttp.Response{}, err
	}
	if admin {
		caps["m.account_moderation"] = map[string]bool{"suspend": true, "lock": true}
	}
	return mxhttp.OK(map[string]any{"capabilities": caps}), nil
}
