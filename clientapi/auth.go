package clientapi

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"myelin/clientapi/account"
	"myelin/mxhttp"
	"myelin/storage"
)

// Access token lifetime. Clients that do not ask for a refresh token get access tokens that do not
// expire: they could not renew them, and expiring them anyway would force a fresh login (and new
// encryption keys) on every expiry. Clients that ask for a refresh token get access tokens that
// expire after an hour, so that a leaked access token is useful for an hour at most.
const DefaultRefreshableTokenLifetime = time.Hour

// lastSeenGranularity bounds how often a device's last_seen_ts is written: an update on every
// request would make every read a write, and a coarse time is all a user needs to recognise a
// device (and all the server should keep).
const lastSeenGranularity = 5 * time.Minute

// Requester is the authenticated user and device behind a request.
type Requester struct {
	UserID    string
	Localpart string
	DeviceID  string
	tokenHash string
}

// authedFunc is the shape of an endpoint that requires an access token.
type authedFunc func(r *http.Request, who Requester) (mxhttp.Response, error)

// authed requires a valid access token before running h.
func (a *API) authed(h authedFunc) mxhttp.HandlerFunc {
	return func(r *http.Request) (mxhttp.Response, error) {
		who, err := a.authenticate(r)
		if err != nil {
			return mxhttp.Response{}, err
		}
		return h(withRequester(r, who), who)
	}
}

// optionalAuth authenticates the request if it carries an access token (which must then be
// valid) and otherwise passes a zero Requester.
func (a *API) optionalAuth(h authedFunc) mxhttp.HandlerFunc {
	return func(r *http.Request) (mxhttp.Response, error) {
		if _, ok := accessToken(r); !ok {
			return h(r, Requester{})
		}
		return a.authed(h)(r)
	}
}

func withRequester(r *http.Request, who Requester) *http.Request {
	log := mxhttp.Logger(r.Context()).WithFields(logrus.Fields{"user_id": who.UserID, "device_id": who.DeviceID})
	return r.WithContext(withMembershipMemo(mxhttp.WithLogger(r.Context(), log), who.UserID)) // membership_at.go
}

// accessToken returns the request's access token: from the Authorization header, or from the
// deprecated access_token query parameter, which the spec still requires servers to accept.
func accessToken(r *http.Request) (string, bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, token, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(token) != "" {
			return strings.TrimSpace(token), true
		}
		return "", false
	}
	if t := r.URL.Query().Get("access_token"); t != "" {
		return t, true
	}
	return "", false
}

// authenticate resolves the request's access token. An unknown token is M_UNKNOWN_TOKEN with
// soft_logout false (the session is gone); an expired one, which can be refreshed or replaced by
// logging in again on the same device, has soft_logout true.
func (a *API) authenticate(r *http.Request) (Requester, error) {
	token, ok := accessToken(r)
	if !ok {
		return Requester{}, mxhttp.MissingToken()
	}
	ctx := r.Context()
	hash := account.HashToken(token)
	owner, err := a.db.CachedAccessTokenOwner(ctx, hash) // storage/tokencache.go: revocations empty it
	if errors.Is(err, storage.ErrNotFound) {
		return Requester{}, mxhttp.UnknownToken(false)
	}
	if err != nil {
		return Requester{}, mxhttp.Internal(err)
	}
	now := a.now()
	if owner.ExpiresTS != 0 && now.UnixMilli() >= owner.ExpiresTS {
		return Requester{}, mxhttp.UnknownToken(true)
	}
	// Account locks and suspensions (admin.go).
	if owner.Locked && !lockExempt(r) {
		return Requester{}, userLocked()
	}
	if owner.Suspended && suspensionForbids(r) {
		return Requester{}, userSuspended()
	}
	who := Requester{
		UserID: a.accounts.UserID(owner.Localpart), Localpart: owner.Localpart, DeviceID: owner.DeviceID, tokenHash: hash,
	}
	stale := now.Sub(time.UnixMilli(owner.LastSeenTS)) >= lastSeenGranularity
	if stale || owner.PendingPrevRefresh {
		if err := a.db.WithTx(ctx, func(tx *storage.Tx) error {
			if owner.PendingPrevRefresh {
				// The first use of a refreshed access token revokes the refresh token it replaced.
				if err := tx.ConfirmRefresh(ctx, owner.RefreshHash); err != nil {
					return err
				}
			}
			if stale {
				return tx.TouchDevice(ctx, owner.Localpart, owner.DeviceID, now.UnixMilli(), a.clientIP(r))
			}
			return nil
		}); err != nil {
			if owner.PendingPrevRefresh {
				return Requester{}, mxhttp.Internal(err)
			}
			mxhttp.Logger(ctx).WithError(err).Warn("could not record when a device was last seen")
		}
		// The cached owner holds the old last-seen time (and pending refresh, though
		// confirming one empties the cache anyway): read it afresh next time.
		a.db.ForgetCachedAccessToken(hash)
	}
	return who, nil
}

// clientIP is the address to store as a device's last seen IP: empty unless the operator asked
// for it.
func (a *API) clientIP(r *http.Request) string {
	if !a.cfg.StoreLastSeenIP {
		return ""
	}
	return remoteHost(r)
}

// remoteHost is the peer's address. Behind a reverse proxy this is the proxy's: trusting
// X-Forwarded-For needs a configured list of trusted proxies, which does not exist yet.
func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// issuedTokens is what a login or registration hands to the client.
type issuedTokens struct {
	DeviceID     string
	AccessToken  string
	RefreshToken string        // empty unless the client asked for one
	ExpiresIn    time.Duration // zero: the access token does not expire
}

// issueTokens logs a device in within tx: it creates the device (or reuses the user's device of
// that id, keeping its display name and revoking its previous tokens, as the spec requires) and
// issues a new access token, plus a refresh token if the client supports them.
func (a *API) issueTokens(ctx context.Context, tx *storage.Tx, r *http.Request, localpart, deviceID, displayName string, refreshable bool) (issuedTokens, error) {
	now := a.now()
	if deviceID == "" {
		deviceID = account.NewDeviceID()
	}
	created, err := tx.UpsertDevice(ctx, storage.Device{
		Localpart: localpart, DeviceID: deviceID, DisplayName: displayName,
		CreatedTS: now.UnixMilli(), LastSeenTS: now.UnixMilli(), LastSeenIP: a.clientIP(r),
	})
	if err != nil {
		return issuedTokens{}, err
	}
	if !created {
		if err := tx.DeleteDeviceTokens(ctx, localpart, deviceID); err != nil {
			return issuedTokens{}, err
		}
		if err := tx.TouchDevice(ctx, localpart, deviceID, now.UnixMilli(), a.clientIP(r)); err != nil {
			return issuedTokens{}, err
		}
	}
	out := issuedTokens{DeviceID: deviceID, AccessToken: account.NewToken(account.AccessTokenPrefix)}
	at := storage.AccessToken{
		Hash: account.HashToken(out.AccessToken), Localpart: localpart, DeviceID: deviceID, CreatedTS: now.UnixMilli(),
	}
	if refreshable {
		out.RefreshToken = account.NewToken(account.RefreshTokenPrefix)
		out.ExpiresIn = a.cfg.RefreshableTokenLifetime
		at.RefreshHash = account.HashToken(out.RefreshToken)
		at.ExpiresTS = now.Add(out.ExpiresIn).UnixMilli()
		if err := tx.InsertRefreshToken(ctx, storage.RefreshToken{
			Hash: at.RefreshHash, Localpart: localpart, DeviceID: deviceID, CreatedTS: now.UnixMilli(),
		}); err != nil {
			return issuedTokens{}, err
		}
	}
	return out, tx.InsertAccessToken(ctx, at)
}

// addTo writes the token fields shared by the login, registration and refresh responses.
func (t issuedTokens) addTo(body map[string]any) {
	body["access_token"] = t.AccessToken
	if t.RefreshToken != "" {
		body["refresh_token"] = t.RefreshToken
	}
	if t.ExpiresIn > 0 {
		body["expires_in_ms"] = t.ExpiresIn.Milliseconds()
	}
}
