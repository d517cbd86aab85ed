package clientapi

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"net/http"
	"strconv"
	"time"

	"myelin/mxhttp"
)

// TURNConfig is the TURN server handed to clients for calls (GET /voip/turnServer), from the
// turn section of the configuration.
type TURNConfig struct {
	// URIs are the turn: and turns: URIs; none means no TURN server is offered.
	URIs []string
	// SharedSecret, when set, makes time-limited credentials by the TURN REST API convention
	// (coturn's use-auth-secret): username "expiry:user_id", password
	// base64(HMAC-SHA1(secret, username)). Otherwise Username and Password are handed out.
	SharedSecret       string
	Username, Password string
	// TTL is how long shared-secret credentials are valid, and the ttl clients are told.
	TTL time.Duration
	// AllowGuests hands credentials to guest accounts too. This server has no guest accounts
	// yet, so it changes nothing today.
	AllowGuests bool
}

// turnServer is GET /voip/turnServer. With no TURN server configured the answer is 200 {}: the
// spec defines no error for this endpoint, and {} is what Synapse and Dendrite answer and what
// clients read as "no TURN server" (they then call peer to peer or through their own).
func (a *API) turnServer(r *http.Request, who Requester) (mxhttp.Response, error) {
	if err := a.allowUser("turn", who.Localpart); err != nil {
		return mxhttp.Response{}, err
	}
	t := a.cfg.TURN
	if len(t.URIs) == 0 {
		return mxhttp.Empty(), nil
	}
	ttl := t.TTL
	if ttl <= 0 {
		ttl = time.Hour
	}
	username, password := t.Username, t.Password
	if t.SharedSecret != "" {
		username, password = turnCredentials(t.SharedSecret, who.UserID, a.now().Add(ttl))
	}
	return mxhttp.OK(map[string]any{
		"username": username,
		"password": password,
		"uris":     t.URIs,
		"ttl":      int64(ttl / time.Second),
	}), nil
}

// turnCredentials are the TURN REST API's ephemeral credentials for userID until expiry.
func turnCredentials(secret, userID string, expiry time.Time) (username, password string) {
	username = strconv.FormatInt(expiry.Unix(), 10) + ":" + userID
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username))
	return username, base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
