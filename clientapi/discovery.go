package clientapi

import (
	"net/http"

	"myelin/mxhttp"
)

// specVersions are the Client-Server API versions this server implements. The spec has a server
// list every version it supports, and clients gate features on them (threads on v1.4,
// authenticated media on v1.11, ...), so each entry below names what that version asked of a
// server and where it is. Modules that are optional in every feature profile and that Myelin
// does not offer are left out knowingly: guest access, SSO and the OAuth 2.0 API (an
// alternative to the legacy login API; GET /auth_metadata answers 404 M_UNRECOGNIZED as its
// definition documents), application services, policy servers and invite permission.
//   - v1.1: the core API with E2EE, key backup, cross-signing, knocking, send-to-device,
//     devices, /publicRooms, user directory, peeking (legacy.go), presence, push, search.
//   - v1.2: restricted rooms, registration tokens, fallback keys, is_guest in whoami.
//   - v1.3: relations and bundled aggregations (relations.go, aggregations.go), refresh tokens
//     (login.go refresh), /messages without from, knock_restricted (roomserver/auth).
//   - v1.4: threads, /threads and per-thread receipts and counts (receipts.go, notifications.go),
//     m.read.private, room_types in /publicRooms, room type kept on upgrade, CORP on media,
//     the .m.rule.room.server_acl push rule (push/rules_default.go).
//   - v1.5: m.reference aggregations. v1.6: /timestamp_to_event, 404/405 M_UNRECOGNIZED.
//   - v1.7: async uploads (media/http.go /create), /login/get_token (off, per its capability),
//     edits as whole events in m.replace, event_property_* and mention push rules, per-device
//     transaction ids (send.go withTxn).
//   - v1.8: reports need membership (reports.go). v1.9: .m.rule.suppress_edits.
//   - v1.10: Retry-After on 429, erase on deactivate, /.well-known/matrix/support, recurse on
//     /relations.
//   - v1.11: authenticated media (media/http.go), animated on thumbnails (media/animated.go),
//     first cross-signing upload without UIA (keys.go), unsigned.membership on the events
//     served to clients (membership_at.go; not on /notifications or state blocks).
//   - v1.12: via on /join and /knock, account locking (admin.go), 403 on shared-room profiles.
//   - v1.13: /rooms/{roomId}/report, M_USER_SUSPENDED. v1.14: /users/{userId}/report.
//   - v1.15: /room_summary, the new /hierarchy fields (roomserver/summary.go).
//   - v1.16: profile fields and m.profile_fields (profile_fields.go), format on /state,
//     use_state_after in /sync, room version 12 with additional_creators on create and on
//     upgrade (rooms_upgrade.go), m.room.create in invite and knock stripped state.
//   - v1.17: the legacy mention push rules removed (push/rules_default.go).
//   - v1.18: admin lock and suspend endpoints and m.account_moderation (capabilities.go),
//     m.room.redaction through /send, report score optional.
//   - v1.19: /mutual_rooms (mutualrooms.go), unsigned.replaces_state (clientevent.go).
var specVersions = []string{
	"v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10",
	"v1.11", "v1.12", "v1.13", "v1.14", "v1.15", "v1.16", "v1.17", "v1.18", "v1.19",
}

func (a *API) versions(*http.Request) (mxhttp.Response, error) {
	return mxhttp.OK(map[string]any{
		"versions":          specVersions,
		"unstable_features": map[string]bool{},
	}), nil
}

func (a *API) wellKnownClient(*http.Request) (mxhttp.Response, error) {
	if a.cfg.PublicBaseURL == "" {
		return mxhttp.Response{}, mxhttp.NotFound("no client discovery information is configured")
	}
	return mxhttp.OK(map[string]any{
		"m.homeserver": map[string]string{"base_url": a.cfg.PublicBaseURL},
	}), nil
}

func (a *API) wellKnownServer(*http.Request) (mxhttp.Response, error) {
	if a.cfg.WellKnownServer == "" {
		return mxhttp.Response{}, mxhttp.NotFound("no server delegation is configured")
	}
	return mxhttp.OK(map[string]string{"m.server": a.cfg.WellKnownServer}), nil
}
