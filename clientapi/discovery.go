package clientapi

import (
	"net/http"

	"myelin/mxhttp"
)

// specVersions are the Client-Server API versions this server implements; clients use the list
// to decide what to call, and most refuse a server that lists none.
//
// The spec lets a server implement only the modules required by the feature profiles it
// targets ("Modules"). Myelin targets the CLI profile for now: the core API plus direct
// messaging, instant messaging, presence, receipts, history visibility, room upgrades and
// typing; content repository, push, VoIP, search, tags and third-party invites are optional
// there. Against that:
//   - v1.1: the core API and those modules exist, with end-to-end encryption, key backup,
//     cross-signing, knocking, send-to-device and device management besides. Known gaps in
//     the core, answered M_UNRECOGNIZED: the public room list (/publicRooms), the user
//     directory (/user_directory/search), listing third-party identifiers (/account/3pid:
//     the server binds none) and peeking (/events, /rooms/{roomId}/initialSync).
//   - v1.2: restricted rooms, registration tokens and their validity endpoint, fallback keys,
//     is_guest in whoami. The space hierarchy belongs to the optional spaces module.
//   - v1.3 is not listed: it adds event relationships to the core, with
//     GET /rooms/{roomId}/relations/{eventId} and bundled aggregations in events, which this
//     server lacks. Later versions also need, in the core, GET /room_summary (v1.15); most of
//     what else they add (refresh tokens, timestamp_to_event, state_after in /sync, the
//     format parameter of /state, via on /join) exists already.
var specVersions = []string{"v1.1", "v1.2"}

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
