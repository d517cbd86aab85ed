package clientapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"myelin/clientapi/account"
	"myelin/mxhttp"
	"myelin/storage"
)

type registerRequest struct {
	Auth                     json.RawMessage `json:"auth"`
	Username                 string          `json:"username"`
	Password                 string          `json:"password"`
	DeviceID                 string          `json:"device_id"`
	InitialDeviceDisplayName string          `json:"initial_device_display_name"`
	InhibitLogin             bool            `json:"inhibit_login"`
	RefreshToken             bool            `json:"refresh_token"`
}

func guestAccessForbidden() *mxhttp.Error {
	return &mxhttp.Error{Status: http.StatusForbidden, Code: "M_GUEST_ACCESS_FORBIDDEN", Message: "guest accounts are not supported"}
}

func registrationDisabled() *mxhttp.Error { return mxhttp.Forbidden("registration is disabled") }

// usernameError maps the account package's errors to the codes of /register and /available.
func usernameError(err error) error {
	switch {
	case errors.Is(err, account.ErrInvalidUsername):
		return &mxhttp.Error{Status: http.StatusBadRequest, Code: "M_INVALID_USERNAME", Message: err.Error()}
	case errors.Is(err, account.ErrUserInUse):
		return &mxhttp.Error{Status: http.StatusBadRequest, Code: "M_USER_IN_USE", Message: "the user id is already taken"}
	case errors.Is(err, account.ErrWeakPassword):
		return &mxhttp.Error{Status: http.StatusBadRequest, Code: "M_WEAK_PASSWORD", Message: err.Error()}
	}
	return mxhttp.Internal(err)
}

// localpartFor maps a requested username onto a localpart: user ids are lower case, so the
// mapping the spec allows is to lower-case it; anything else outside the grammar is refused.
func (a *API) localpartFor(username string) (string, error) {
	localpart := strings.ToLower(username)
	if err := a.accounts.ValidateLocalpart(localpart); err != nil {
		return "", usernameError(err)
	}
	return localpart, nil
}

// checkAvailable refuses a localpart that is or was ever taken (deactivated accounts keep theirs).
func (a *API) checkAvailable(r *http.Request, localpart string) error {
	_, err := storage.GetAccount(r.Context(), a.db, localpart)
	switch {
	case err == nil:
		return usernameError(account.ErrUserInUse)
	case errors.Is(err, storage.ErrNotFound):
		return nil
	default:
		return mxhttp.Internal(err)
	}
}

// registrationFlows: a registration token when one is required, then the policies to accept
// when there are any (consent.go); the dummy stage only when neither is asked for.
func (a *API) registrationFlows() [][]string {
	var flow []string
	if a.cfg.RegistrationRequiresToken {
		flow = append(flow, stageRegistrationToken)
	}
	if len(a.cfg.ConsentPolicies) > 0 {
		flow = append(flow, stageTerms)
	}
	if len(flow) == 0 {
		flow = []string{stageDummy}
	}
	return [][]string{flow}
}

// register is POST /register. Guests are refused; user accounts need registration to be enabled
// and a completed User-Interactive Authentication (dummy, or a registration token when required,
// and the acceptance of the server's policies when it has any).
// The user name and password are checked before authentication, as the spec requires.
func (a *API) register(r *http.Request) (mxhttp.Response, error) {
	switch r.URL.Query().Get("kind") {
	case "", "user":
	case "guest":
		return mxhttp.Response{}, guestAccessForbidden()
	default:
		return mxhttp.Response{}, mxhttp.InvalidParam("kind must be user or guest")
	}
	if !a.cfg.RegistrationEnabled {
		return mxhttp.Response{}, registrationDisabled()
	}
	if err := a.allowIP("register", r); err != nil {
		return mxhttp.Response{}, err
	}
	var req registerRequest
	if err := mxhttp.ReadJSON(r, &req); err != nil {
		return mxhttp.Response{}, err
	}
	var localpart string
	if req.Username != "" {
		var err error
		if localpart, err = a.localpartFor(req.Username); err != nil {
			return mxhttp.Response{}, err
		}
		if err := a.checkAvailable(r, localpart); err != nil {
			return mxhttp.Response{}, err
		}
	}
	if req.Password != "" {
		if err := account.CheckPasswordStrength(req.Password); err != nil {
			return mxhttp.Response{}, usernameError(err)
		}
	}
	if err := checkDeviceID(req.DeviceID); err != nil {
		return mxhttp.Response{}, err
	}

	session, challenge, err := a.interactiveAuth(r, req.Auth, uiaSpec{operation: "POST /register", flows: a.registrationFlows(),
		params: termsParams(a.cfg.ConsentPolicies), data: consentSessionData(a.cfg.ConsentPolicies)})
	if err != nil || challenge != nil {
		return deref(challenge), err
	}
	if req.Password == "" {
		// Accounts without a password could never log in: this server has no other way in yet.
		return mxhttp.Response{}, mxhttp.MissingParam("password is required")
	}
	if localpart == "" {
		localpart = account.NewLocalpart()
	}
	acc, err := a.accounts.Prepare(localpart, req.Password, false)
	if err != nil {
		return mxhttp.Response{}, usernameError(err)
	}
	consent, accepted, err := acceptedConsent(session)
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	if len(a.cfg.ConsentPolicies) > 0 && !accepted {
		// A session that completed another flow before policies were configured.
		return mxhttp.Response{}, mxhttp.Unauthorized("the policies of this server must be accepted")
	}

	ctx := r.Context()
	var tokens issuedTokens
	err = a.db.WithTx(ctx, func(tx *storage.Tx) error {
		if hash := session.Data[uiaDataRegistrationToken]; hash != "" {
			if err := tx.UseRegistrationToken(ctx, hash, a.now().UnixMilli()); errors.Is(err, storage.ErrNotFound) {
				return mxhttp.Unauthorized("the registration token has been used up or has expired")
			} else if err != nil {
				return err
			}
		} else if a.cfg.RegistrationRequiresToken {
			return mxhttp.Unauthorized("a registration token is required")
		}
		if err := a.accounts.Insert(ctx, tx, acc); err != nil {
			return err
		}
		if err := tx.RecordConsent(ctx, localpart, consent, a.now().UnixMilli()); err != nil {
			return err
		}
		if !req.InhibitLogin {
			var err error
			if tokens, err = a.issueTokens(ctx, tx, r, localpart, req.DeviceID, req.InitialDeviceDisplayName, req.RefreshToken); err != nil {
				return err
			}
		}
		return finishUIA(ctx, tx, session)
	})
	var mxErr *mxhttp.Error
	if errors.As(err, &mxErr) {
		return mxhttp.Response{}, mxErr
	}
	if err != nil {
		return mxhttp.Response{}, usernameError(err)
	}
	mxhttp.Logger(ctx).WithField("user_id", a.accounts.UserID(localpart)).Info("registered a new account")
	body := map[string]any{"user_id": a.accounts.UserID(localpart), "home_server": a.cfg.ServerName}
	if !req.InhibitLogin {
		body["device_id"] = tokens.DeviceID
		tokens.addTo(body)
	}
	return mxhttp.OK(body), nil
}

// registerAvailable is GET /register/available.
func (a *API) registerAvailable(r *http.Request) (mxhttp.Response, error) {
	if err := a.allowIP("register", r); err != nil {
		return mxhttp.Response{}, err
	}
	username := r.URL.Query().Get("username")
	if username == "" {
		return mxhttp.Response{}, mxhttp.MissingParam("username is required")
	}
	localpart, err := a.localpartFor(username)
	if err != nil {
		return mxhttp.Response{}, err
	}
	if err := a.checkAvailable(r, localpart); err != nil {
		return mxhttp.Response{}, err
	}
	return mxhttp.OK(map[string]bool{"available": true}), nil
}

// registrationTokenValidity is GET /v1/register/m.login.registration_token/validity. It is rate
// limited by address, since it invites guessing.
func (a *API) registrationTokenValidity(r *http.Request) (mxhttp.Response, error) {
	if !a.cfg.RegistrationEnabled {
		return mxhttp.Response{}, mxhttp.Forbidden("registration is not enabled on this homeserver")
	}
	if err := a.allowIP("register", r); err != nil {
		return mxhttp.Response{}, err
	}
	token := r.URL.Query().Get("token")
	if token == "" {
		return mxhttp.Response{}, mxhttp.MissingParam("token is required")
	}
	valid := false
	if validRegistrationToken(token) {
		var err error
		valid, err = storage.RegistrationTokenValid(r.Context(), a.db, account.HashToken(token), a.now().UnixMilli())
		if err != nil {
			return mxhttp.Response{}, mxhttp.Internal(err)
		}
	}
	return mxhttp.OK(map[string]bool{"valid": valid}), nil
}

// checkDeviceID bounds a client-chosen device id; it is stored and echoed in other users' views.
func checkDeviceID(id string) error {
	if len(id) > 255 {
		return mxhttp.InvalidParam("device_id is longer than 255 bytes")
	}
	return nil
}

func deref(r *mxhttp.Response) mxhttp.Response {
	if r == nil {
		return mxhttp.Response{}
	}
	return *r
}
