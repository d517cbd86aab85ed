package clientapi

import (
	"errors"
	"net/http"

	"myelin/clientapi/account"
	"myelin/mxhttp"
	"myelin/storage"
)

func (a *API) loginFlows(r *http.Request) (mxhttp.Response, error) {
	if err := a.allowIP("login", r); err != nil {
		return mxhttp.Response{}, err
	}
	return mxhttp.OK(map[string]any{"flows": []map[string]any{{"type": stagePassword}}}), nil
}

type loginRequest struct {
	Type                     string          `json:"type"`
	Identifier               *userIdentifier `json:"identifier"`
	User                     string          `json:"user"`    // deprecated
	Medium                   string          `json:"medium"`  // deprecated
	Address                  string          `json:"address"` // deprecated
	Password                 string          `json:"password"`
	Token                    string          `json:"token"`
	DeviceID                 string          `json:"device_id"`
	InitialDeviceDisplayName string          `json:"initial_device_display_name"`
	RefreshToken             bool            `json:"refresh_token"`
}

func badLogin() *mxhttp.Error { return mxhttp.Forbidden("invalid user name or password") }

// login is POST /login with m.login.password: the user is named by an m.id.user identifier or the
// deprecated top-level user field. A wrong password, an unknown user and a deactivated account
// (whose password is erased, which the spec allows answering with M_FORBIDDEN) all get the same
// answer. Attempts are rate limited by address and by the user named.
func (a *API) login(r *http.Request) (mxhttp.Response, error) {
	if err := a.allowIP("login", r); err != nil {
		return mxhttp.Response{}, err
	}
	var req loginRequest
	if err := mxhttp.ReadJSON(r, &req); err != nil {
		return mxhttp.Response{}, err
	}
	if req.Type != stagePassword {
		return mxhttp.Response{}, &mxhttp.Error{Status: http.StatusBadRequest, Code: "M_UNKNOWN", Message: "unsupported login type"}
	}
	user := req.User
	switch {
	case req.Identifier != nil && req.Identifier.Type == "m.id.user":
		user = req.Identifier.User
	case req.Identifier != nil, req.Medium != "" || req.Address != "":
		// Third-party identifiers: this server binds none, and the spec answers unknown ones with 403.
		return mxhttp.Response{}, badLogin()
	}
	if user == "" {
		return mxhttp.Response{}, mxhttp.MissingParam("identifier is required")
	}
	if err := checkDeviceID(req.DeviceID); err != nil {
		return mxhttp.Response{}, err
	}
	localpart, err := a.accounts.LocalpartOf(user)
	if err != nil {
		return mxhttp.Response{}, badLogin()
	}
	if err := a.allowUser("login", localpart); err != nil {
		return mxhttp.Response{}, err
	}
	err = a.accounts.CheckCredentials(r.Context(), localpart, req.Password)
	if errors.Is(err, account.ErrBadCredentials) {
		return mxhttp.Response{}, badLogin()
	}
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}

	ctx := r.Context()
	var tokens issuedTokens
	if err := a.db.WithTx(ctx, func(tx *storage.Tx) error {
		var err error
		tokens, err = a.issueTokens(ctx, tx, r, localpart, req.DeviceID, req.InitialDeviceDisplayName, req.RefreshToken)
		return err
	}); err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	body := map[string]any{
		"user_id":     a.accounts.UserID(localpart),
		"device_id":   tokens.DeviceID,
		"home_server": a.cfg.ServerName,
	}
	tokens.addTo(body)
	if a.cfg.PublicBaseURL != "" {
		body["well_known"] = map[string]any{"m.homeserver": map[string]string{"base_url": a.cfg.PublicBaseURL}}
	}
	return mxhttp.OK(body), nil
}

// logout is POST /logout: the device goes, with its tokens (and, through the hook, its keys).
func (a *API) logout(r *http.Request, who Requester) (mxhttp.Response, error) {
	ctx := r.Context()
	err := a.db.WithTx(ctx, func(tx *storage.Tx) error {
		ids, err := tx.DeleteDevices(ctx, who.Localpart, []string{who.DeviceID})
		if err != nil {
			return err
		}
		return a.devicesDeleted(ctx, tx, who.Localpart, ids)
	})
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	return mxhttp.Empty(), nil
}

// logoutAll is POST /logout/all: every device of the user goes, the requesting one included.
func (a *API) logoutAll(r *http.Request, who Requester) (mxhttp.Response, error) {
	ctx := r.Context()
	err := a.db.WithTx(ctx, func(tx *storage.Tx) error {
		ids, err := tx.DeleteAllDevices(ctx, who.Localpart, "")
		if err != nil {
			return err
		}
		return a.devicesDeleted(ctx, tx, who.Localpart, ids)
	})
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	return mxhttp.Empty(), nil
}

// refresh is POST /refresh: a new access and refresh token for the refresh token's device. The
// old access token is revoked at once; the old refresh token stays valid until the new pair is
// first used, so that a client that lost the response can repeat the call.
func (a *API) refresh(r *http.Request) (mxhttp.Response, error) {
	var req struct {
		RefreshToken *string `json:"refresh_token"`
	}
	if err := mxhttp.ReadJSON(r, &req); err != nil {
		return mxhttp.Response{}, err
	}
	if req.RefreshToken == nil {
		return mxhttp.Response{}, mxhttp.MissingParam("refresh_token is required")
	}
	ctx := r.Context()
	now := a.now()
	out := issuedTokens{
		AccessToken:  account.NewToken(account.AccessTokenPrefix),
		RefreshToken: account.NewToken(account.RefreshTokenPrefix),
		ExpiresIn:    a.cfg.RefreshableTokenLifetime,
	}
	err := a.db.WithTx(ctx, func(tx *storage.Tx) error {
		old, err := storage.GetRefreshToken(ctx, tx, account.HashToken(*req.RefreshToken))
		if err != nil {
			return err
		}
		if err := a.allowUser("refresh", old.Localpart); err != nil {
			return err
		}
		out.DeviceID = old.DeviceID
		return tx.RotateRefreshToken(ctx, old,
			storage.RefreshToken{Hash: account.HashToken(out.RefreshToken), Localpart: old.Localpart, DeviceID: old.DeviceID, CreatedTS: now.UnixMilli()},
			storage.AccessToken{Hash: account.HashToken(out.AccessToken), Localpart: old.Localpart, DeviceID: old.DeviceID,
				CreatedTS: now.UnixMilli(), ExpiresTS: now.Add(out.ExpiresIn).UnixMilli()})
	})
	var mxErr *mxhttp.Error
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return mxhttp.Response{}, mxhttp.UnknownToken(false)
	case errors.As(err, &mxErr):
		return mxhttp.Response{}, mxErr
	case err != nil:
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	body := map[string]any{}
	out.addTo(body)
	return mxhttp.OK(body), nil
}

// whoami is GET /account/whoami. Guests do not exist on this server.
func (a *API) whoami(_ *http.Request, who Requester) (mxhttp.Response, error) {
	return mxhttp.OK(map[string]any{"user_id": who.UserID, "device_id": who.DeviceID, "is_guest": false}), nil
}
