package clientapi

import (
	"net/http"

	"myelin/mxhttp"
	"myelin/roomserver/event"
)

// capabilities is GET /capabilities. Password changes work; profile changes are allowed (their
// endpoints belong to the profile area); third-party identifiers are not supported, and neither
// is generating login tokens.
func (a *API) capabilities(*http.Request, Requester) (mxhttp.Response, error) {
	available := map[string]string{}
	for _, id := range event.Versions() {
		stability := "unstable"
		if event.MustVersion(id).Stable {
			stability = "stable"
		}
		available[id] = stability
	}
	enabled := func(b bool) map[string]bool { return map[string]bool{"enabled": b} }
	return mxhttp.OK(map[string]any{"capabilities": map[string]any{
		"m.change_password": enabled(true),
		"m.room_versions":   map[string]any{"default": a.cfg.DefaultRoomVersion, "available": available},
		"m.set_displayname": enabled(true),
		"m.set_avatar_url":  enabled(true),
		"m.profile_fields":  enabled(true),
		"m.3pid_changes":    enabled(false),
		"m.get_login_token": enabled(false),
	}}), nil
}
