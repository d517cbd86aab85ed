package federation

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"

	"myelin/mxhttp"
	"myelin/storage"
)

// openIDUserInfo is GET /_matrix/federation/v1/openid/userinfo: a third party (an integration
// manager, a widget host) exchanges the OpenID token a user gave it for the user's id. It is
// not signed with X-Matrix, since the caller need not be a homeserver: the token is the
// credential, so the route sits outside s.authed. The answer names only the user.
func (s *Server) openIDUserInfo(r *http.Request) (mxhttp.Response, error) {
	token := r.URL.Query().Get("access_token")
	unknown := (&mxhttp.Error{Status: http.StatusUnauthorized, Code: "M_UNKNOWN_TOKEN", Message: "access token unknown or expired"})
	if token == "" || s.cfg.DB == nil {
		return mxhttp.Response{}, unknown
	}
	// The same hash as clientapi/account.HashToken, under which the client API stored it.
	sum := sha256.Sum256([]byte(token))
	userID, err := storage.LookupOpenIDToken(r.Context(), s.cfg.DB, hex.EncodeToString(sum[:]), s.now().UnixMilli())
	if errors.Is(err, storage.ErrNotFound) {
		return mxhttp.Response{}, unknown
	}
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	return mxhttp.OK(map[string]string{"sub": userID}), nil
}
