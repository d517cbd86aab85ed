package clientapi

import (
	"encoding/json"
	"net/http"
	"time"

	"myelin/clientapi/account"
	"myelin/mxhttp"
	"myelin/storage"
)

// OpenID (client-server API "OpenID"): a user asks for a token that proves their identity to a
// third party (an integration manager, a widget), which checks it with this server's
// /_matrix/federation/v1/openid/userinfo (federation/openid.go). The token says only who the
// user is; it is stored as a hash and lives an hour.

// openIDTokenLifetime is the expires_in of an OpenID token.
const openIDTokenLifetime = time.Hour

// openIDTokenPrefix marks OpenID tokens, like the access token prefixes.
const openIDTokenPrefix = "myo_"

// requestOpenIDToken is POST /user/{userId}/openid/request_token.
func (a *API) requestOpenIDToken(r *http.Request, who Requester) (mxhttp.Response, error) {
	if err := requireOwnUser(r, who); err != nil {
		return mxhttp.Response{}, mxhttp.Forbidden("you can only request OpenID tokens for yourself")
	}
	if err := a.allowUser("openid", who.Localpart); err != nil {
		return mxhttp.Response{}, err
	}
	var body map[string]json.RawMessage
	if err := mxhttp.ReadJSON(r, &body); err != nil {
		return mxhttp.Response{}, err
	}
	token := account.NewToken(openIDTokenPrefix)
	now := a.now()
	err := a.db.WithTx(r.Context(), func(tx *storage.Tx) error {
		return tx.InsertOpenIDToken(r.Context(), account.HashToken(token), who.UserID,
			now.Add(openIDTokenLifetime).UnixMilli(), now.UnixMilli())
	})
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	return mxhttp.OK(map[string]any{
		"access_token":       token,
		"token_type":         "Bearer",
		"matrix_server_name": a.cfg.ServerName,
		"expires_in":         int64(openIDTokenLifetime / time.Second),
	}), nil
}
