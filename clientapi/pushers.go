package clientapi

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"myelin/mxhttp"
	"myelin/storage"
)

// Pushers (GET /pushers, POST /pushers/set). A pusher belongs to the device that set it and
// goes when the device does (logout, device deletion, deactivation). Only "http" pushers exist
// here: an "email" pusher is refused, because Myelin sends no email.

// Limits the spec gives for pushers.
const (
	maxAppIDChars     = 64
	maxPushKeyBytes   = 512
	pushGatewayPath   = "/_matrix/push/v1/notify"
	pusherKindHTTP    = "http"
	pusherKindEmail   = "email"
	formatEventIDOnly = "event_id_only"
)

// pusherJSON is a pusher as GET /pushers shows it.
type pusherJSON struct {
	PushKey           string          `json:"pushkey"`
	Kind              string          `json:"kind"`
	AppID             string          `json:"app_id"`
	AppDisplayName    string          `json:"app_display_name"`
	DeviceDisplayName string          `json:"device_display_name"`
	ProfileTag        string          `json:"profile_tag,omitempty"`
	Lang              string          `json:"lang"`
	Data              json.RawMessage `json:"data"`
}

// getPushers is GET /pushers.
func (a *API) getPushers(r *http.Request, who Requester) (mxhttp.Response, error) {
	ps, err := storage.PushersOfUser(r.Context(), a.db, who.UserID)
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	out := make([]pusherJSON, 0, len(ps))
	for _, p := range ps {
		out = append(out, pusherJSON{
			PushKey: p.PushKey, Kind: p.Kind, AppID: p.AppID, AppDisplayName: p.AppDisplayName,
			DeviceDisplayName: p.DeviceDisplayName, ProfileTag: p.ProfileTag, Lang: p.Lang, Data: p.Data,
		})
	}
	return mxhttp.OK(map[string]any{"pushers": out}), nil
}

// setPusher is POST /pushers/set: kind null deletes the user's pusher (app_id, pushkey);
// otherwise it is created or updated.
func (a *API) setPusher(r *http.Request, who Requester) (mxhttp.Response, error) {
	if err := a.allowUser("pushers", who.Localpart); err != nil {
		return mxhttp.Response{}, err
	}
	var body map[string]json.RawMessage
	if err := mxhttp.ReadJSON(r, &body); err != nil {
		return mxhttp.Response{}, err
	}
	var missing []string
	for _, k := range []string{"kind", "app_id", "pushkey"} {
		if _, ok := body[k]; !ok {
			missing = append(missing, k)
		}
	}
	kindRaw := body["kind"]
	deleting := string(kindRaw) == "null"
	if _, present := body["kind"]; present && !deleting {
		for _, k := range []string{"app_display_name", "device_display_name", "lang", "data"} {
			if raw, ok := body[k]; !ok || string(raw) == "null" {
				missing = append(missing, k)
			}
		}
	}
	if len(missing) > 0 {
		return mxhttp.Response{}, mxhttp.MissingParam("Missing parameters: %s", strings.Join(missing, ", "))
	}
	str := func(key string) (string, error) {
		raw, ok := body[key]
		if !ok || string(raw) == "null" {
			return "", nil
		}
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", mxhttp.InvalidParam("%s must be a string", key)
		}
		return s, nil
	}
	appID, err := str("app_id")
	if err != nil {
		return mxhttp.Response{}, err
	}
	pushKey, err := str("pushkey")
	if err != nil {
		return mxhttp.Response{}, err
	}
	if appID == "" || utf8.RuneCountInString(appID) > maxAppIDChars {
		return mxhttp.Response{}, mxhttp.InvalidParam("app_id must be 1 to %d characters", maxAppIDChars)
	}
	if pushKey == "" || len(pushKey) > maxPushKeyBytes {
		return mxhttp.Response{}, mxhttp.InvalidParam("pushkey must be 1 to %d bytes", maxPushKeyBytes)
	}
	ctx := r.Context()
	if deleting {
		if err := a.db.WithTx(ctx, func(tx *storage.Tx) error { return tx.DeletePusher(ctx, who.UserID, appID, pushKey) }); err != nil {
			return mxhttp.Response{}, mxhttp.Internal(err)
		}
		a.pushersChanged(who.UserID)
		return mxhttp.Empty(), nil
	}
	kind, err := str("kind")
	if err != nil {
		return mxhttp.Response{}, err
	}
	p := storage.Pusher{UserID: who.UserID, Localpart: who.Localpart, DeviceID: who.DeviceID, Kind: kind, AppID: appID, PushKey: pushKey}
	for key, dst := range map[string]*string{
		"app_display_name": &p.AppDisplayName, "device_display_name": &p.DeviceDisplayName,
		"lang": &p.Lang, "profile_tag": &p.ProfileTag,
	} {
		if *dst, err = str(key); err != nil {
			return mxhttp.Response{}, err
		}
	}
	keepOthers := false
	if raw, ok := body["append"]; ok && string(raw) != "null" {
		if json.Unmarshal(raw, &keepOthers) != nil {
			return mxhttp.Response{}, mxhttp.InvalidParam("append must be a boolean")
		}
	}
	var data map[string]json.RawMessage
	if json.Unmarshal(body["data"], &data) != nil || data == nil {
		return mxhttp.Response{}, mxhttp.InvalidParam("data must be an object")
	}
	switch kind {
	case pusherKindHTTP:
		if err := checkHTTPPusherData(data); err != nil {
			return mxhttp.Response{}, err
		}
	case pusherKindEmail:
		return mxhttp.Response{}, mxhttp.InvalidParam("email pushers are not supported: this server sends no email")
	default:
		return mxhttp.Response{}, mxhttp.InvalidParam("unknown pusher kind %q", kind)
	}
	p.Data = body["data"]
	err = a.db.WithTx(ctx, func(tx *storage.Tx) error {
		// A new pusher starts with the notifications to come, not the past ones.
		pos, err := storage.CurrentStreamPosition(ctx, tx, "events")
		if err != nil {
			return err
		}
		p.DeliveredPos, p.PushKeyTS = pos, a.now().UnixMilli()
		return tx.SetPusher(ctx, p, keepOthers)
	})
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	a.pushersChanged(who.UserID)
	return mxhttp.Empty(), nil
}

// checkHTTPPusherData checks data.url, which must be an http(s) URL of the push gateway API's
// notify endpoint, and data.format, which may only be "event_id_only". Other keys are the
// client's and go to the gateway as they are.
func checkHTTPPusherData(data map[string]json.RawMessage) error {
	raw, ok := data["url"]
	if !ok || string(raw) == "null" {
		return mxhttp.MissingParam("data.url is required for http pushers")
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return mxhttp.InvalidParam("data.url must be a string")
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.Path != pushGatewayPath ||
		u.RawQuery != "" || u.Fragment != "" {
		return mxhttp.InvalidParam("data.url must be an http(s) URL ending in %s", pushGatewayPath)
	}
	if raw, ok := data["format"]; ok && string(raw) != "null" {
		var f string
		if json.Unmarshal(raw, &f) != nil || f != formatEventIDOnly {
			return mxhttp.InvalidParam("data.format must be %q", formatEventIDOnly)
		}
	}
	return nil
}

func (a *API) pushersChanged(userID string) {
	if w := a.cfg.Notifications; w != nil {
		w.PusherChanged(userID)
	}
}
