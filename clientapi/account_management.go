package clientapi

import (
	"encoding/json"
	"errors"
	"net/http"

	"myelin/clientapi/account"
	"myelin/mxhttp"
	"myelin/storage"
)

// passwordFlows is the User-Interactive Authentication of sensitive account actions: the
// account's password, proving that whoever holds the access token also knows it.
var passwordFlows = [][]string{{stagePassword}}

// changePassword is POST /account/password. With an access token, the password stage must
// authenticate the token's user; without one, the stage decides whose password changes. Other
// devices are logged out unless logout_devices is false; the requesting device never is.
func (a *API) changePassword(r *http.Request, who Requester) (mxhttp.Response, error) {
	var req struct {
		NewPassword   *string         `json:"new_password"`
		LogoutDevices *bool           `json:"logout_devices"`
		Auth          json.RawMessage `json:"auth"`
	}
	if err := mxhttp.ReadJSON(r, &req); err != nil {
		return mxhttp.Response{}, err
	}
	if req.NewPassword == nil {
		return mxhttp.Response{}, mxhttp.MissingParam("new_password is required")
	}
	hash, err := account.ChangePassword(*req.NewPassword)
	if err != nil {
		return mxhttp.Response{}, usernameError(err)
	}
	session, challenge, err := a.interactiveAuth(r, req.Auth,
		uiaSpec{operation: "POST /account/password", localpart: who.Localpart, flows: passwordFlows})
	if err != nil || challenge != nil {
		return deref(challenge), err
	}
	logout := req.LogoutDevices == nil || *req.LogoutDevices
	ctx := r.Context()
	err = a.db.WithTx(ctx, func(tx *storage.Tx) error {
		if err := tx.SetPasswordHash(ctx, session.Localpart, hash); err != nil {
			return err
		}
		if logout {
			ids, err := tx.DeleteAllDevices(ctx, session.Localpart, who.DeviceID)
			if err != nil {
				return err
			}
			if err := a.devicesDeleted(ctx, tx, session.Localpart, ids); err != nil {
				return err
			}
		}
		return finishUIA(ctx, tx, session)
	})
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	return mxhttp.Empty(), nil
}

// deactivate is POST /account/deactivate: the password hash is erased, every device and token
// deleted, and the account row kept as a tombstone so that its user id is never reused. Leaving
// rooms and erasure happen in the AccountDeactivated hook. This server binds no third-party
// identifiers, so there is nothing to unbind and the result is "success", as the spec requires.
func (a *API) deactivate(r *http.Request, who Requester) (mxhttp.Response, error) {
	var req struct {
		Auth     json.RawMessage `json:"auth"`
		IDServer string          `json:"id_server"`
		Erase    bool            `json:"erase"`
	}
	if err := mxhttp.ReadJSON(r, &req); err != nil {
		return mxhttp.Response{}, err
	}
	session, challenge, err := a.interactiveAuth(r, req.Auth,
		uiaSpec{operation: "POST /account/deactivate", localpart: who.Localpart, flows: passwordFlows})
	if err != nil || challenge != nil {
		return deref(challenge), err
	}
	ctx := r.Context()
	localpart := session.Localpart
	err = a.db.WithTx(ctx, func(tx *storage.Tx) error {
		// DeactivateAccount also deletes the account's auth sessions, this one included.
		ids, err := tx.DeactivateAccount(ctx, localpart, a.now().UnixMilli())
		if err != nil {
			return err
		}
		return a.devicesDeleted(ctx, tx, localpart, ids)
	})
	if errors.Is(err, storage.ErrNotFound) {
		return mxhttp.Response{}, mxhttp.NotFound("no such account")
	}
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	userID := a.accounts.UserID(localpart)
	mxhttp.Logger(ctx).WithField("user_id", userID).Info("deactivated an account")
	if h := a.cfg.Hooks.AccountDeactivated; h != nil {
		if err := h(ctx, userID, req.Erase); err != nil {
			// The account is already deactivated; what remains is retried by the hook's owner.
			mxhttp.Logger(ctx).WithError(err).Error("after deactivating an account")
		}
	}
	return mxhttp.OK(map[string]string{"id_server_unbind_result": "success"}), nil
}
