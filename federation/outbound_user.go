package federation

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"

	"myelin/keys/e2e"
)

// UserClient makes the user-level requests of the server-server API on behalf of local users:
// remote keys (/user/keys/query, /user/keys/claim, /user/devices), remote profiles
// (/query/profile), and the EDUs of send-to-device messages and device list updates, which it
// queues on the Sender.
type UserClient struct {
	client Requester
	edus   EDUQueue
}

// EDUQueue queues EDUs for other servers; *Sender is one.
type EDUQueue interface {
	SendEDU(ctx context.Context, destinations []string, eduType string, content any) error
}

var (
	_ EDUQueue       = (*Sender)(nil)
	_ e2e.Federation = (*UserClient)(nil)
)

// NewUserClient returns the user-level federation client.
func NewUserClient(client Requester, edus EDUQueue) *UserClient {
	return &UserClient{client: client, edus: edus}
}

// SendEDU queues an EDU for destinations.
func (u *UserClient) SendEDU(ctx context.Context, destinations []string, eduType string, content any) error {
	return u.edus.SendEDU(ctx, destinations, eduType, content)
}

// SendToDevice queues an m.direct_to_device EDU for destination.
func (u *UserClient) SendToDevice(ctx context.Context, destination, sender, eventType, messageID string, messages map[string]map[string]json.RawMessage) error {
	return u.edus.SendEDU(ctx, []string{destination}, "m.direct_to_device", map[string]any{
		"sender": sender, "type": eventType, "message_id": messageID, "messages": messages,
	})
}

// QueryKeys is POST /user/keys/query.
func (u *UserClient) QueryKeys(ctx context.Context, server string, want map[string][]string) (e2e.QueryResult, error) {
	var res e2e.QueryResult
	err := u.client.Do(ctx, server, http.MethodPost, "/_matrix/federation/v1/user/keys/query",
		map[string]any{"device_keys": want}, &res)
	return res, err
}

// ClaimKeys is POST /user/keys/claim.
func (u *UserClient) ClaimKeys(ctx context.Context, server string, want map[string]map[string]string) (e2e.ClaimResult, error) {
	var res e2e.ClaimResult
	err := u.client.Do(ctx, server, http.MethodPost, "/_matrix/federation/v1/user/keys/claim",
		map[string]any{"one_time_keys": want}, &res)
	return res, err
}

// UserDevices is GET /user/devices/{userId}.
func (u *UserClient) UserDevices(ctx context.Context, server, userID string) (e2e.UserDevices, error) {
	var res e2e.UserDevices
	err := u.client.Do(ctx, server, http.MethodGet, "/_matrix/federation/v1/user/devices/"+url.PathEscape(userID), nil, &res)
	return res, err
}

// QueryProfile is GET /query/profile. A refusal or an unknown user is reported as the room
// server's ErrNotAllowed or ErrNotFound.
func (u *UserClient) QueryProfile(ctx context.Context, userID, field string) (map[string]any, error) {
	server := serverOf(userID)
	q := url.Values{"user_id": {userID}}
	if field != "" {
		q.Set("field", field)
	}
	var res map[string]any
	if err := u.client.Do(ctx, server, http.MethodGet, "/_matrix/federation/v1/query/profile?"+q.Encode(), nil, &res); err != nil {
		return nil, remoteError(err)
	}
	// displayname and avatar_url are strings or absent; m.tz and custom fields (spec v1.16)
	// any JSON value. A null value means the field is not set, and with field only that one
	// is taken, whatever else the other server sent.
	out := map[string]any{}
	for k, v := range res {
		if v == nil || field != "" && k != field || len(k) > maxProfileKeyBytes {
			continue
		}
		if _, isString := v.(string); !isString && (k == "displayname" || k == "avatar_url") {
			continue
		}
		out[k] = v
	}
	return out, nil
}

// maxProfileKeyBytes bounds the keys taken from another server's profile, as the spec bounds
// them (255 bytes).
const maxProfileKeyBytes = 255
