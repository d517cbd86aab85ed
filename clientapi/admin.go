package clientapi

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"myelin/mxhttp"
	"myelin/roomserver/event"
	"myelin/storage"
)

// Server administration (client-server API "Server administration", admin.yaml): whois, and
// the account locks and suspensions of spec v1.18. Administrators are the accounts created
// with `myelin create-account --admin`.
//
// A locked account answers 401 M_USER_LOCKED (soft_logout true) on everything but logging out
// (auth.go); its tokens stay valid so that an unlock needs no new login. A suspended account
// can read, sync, manage its devices and keys, leave rooms and redact its own events (not
// others': redactions.go), but cannot join, knock, invite, create rooms, send events other
// than redactions, set state or change its profile: the spec's recommended set
// (suspensionForbids).

// userLocked is the answer to a locked account's requests.
func userLocked() *mxhttp.Error {
	return (&mxhttp.Error{Status: http.StatusUnauthorized, Code: "M_USER_LOCKED", Message: "this account has been locked"}).
		With("soft_logout", true)
}

// userSuspended is the answer to an action a suspended account may not take.
func userSuspended() *mxhttp.Error {
	return &mxhttp.Error{Status: http.StatusForbidden, Code: "M_USER_SUSPENDED", Message: "you cannot perform this action while suspended"}
}

// lockExempt reports whether a locked account may still make request r: only logging out.
func lockExempt(r *http.Request) bool {
	p := r.URL.Path
	return r.Method == http.MethodPost &&
		(strings.HasSuffix(p, "/_matrix/client/v3/logout") || strings.HasSuffix(p, "/_matrix/client/v3/logout/all"))
}

// suspensionForbids reports whether request r is an action a suspended account may not take.
// It works on the path so that the rule lives in one place rather than in every handler.
func suspensionForbids(r *http.Request) bool {
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/_matrix/client/v3/")
	if !ok {
		return false
	}
	seg := strings.Split(rest, "/")
	switch r.Method {
	case http.MethodPost:
		switch {
		case seg[0] == "createRoom", seg[0] == "join", seg[0] == "knock":
			return true
		case seg[0] == "rooms" && len(seg) == 3:
			switch seg[2] {
			case "join", "invite", "kick", "ban", "unban", "upgrade":
				return true
			}
		}
	case http.MethodPut:
		switch {
		case seg[0] == "rooms" && len(seg) >= 4 && seg[2] == "send":
			return seg[3] != "m.room.redaction"
		case seg[0] == "rooms" && len(seg) >= 4 && seg[2] == "state":
			return true
		case seg[0] == "profile", seg[0] == "directory" && len(seg) > 1 && seg[1] == "room":
			return true
		}
	case http.MethodDelete:
		return seg[0] == "profile"
	}
	return false
}

// requireAdmin refuses a request from a user who is not a server administrator.
func (a *API) requireAdmin(ctx context.Context, who Requester) error {
	admin, err := a.isAdmin(ctx, who)
	if err != nil {
		return err
	}
	if !admin {
		return mxhttp.Forbidden("you are not a server administrator")
	}
	return nil
}

// isAdmin reports whether the requester is a server administrator.
func (a *API) isAdmin(ctx context.Context, who Requester) (bool, error) {
	acct, err := storage.GetAccount(ctx, a.db, who.Localpart)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, mxhttp.Internal(err)
	}
	return acct.IsAdmin, nil
}

// adminTarget reads {userId} of an admin endpoint, after checking (first, so that non-admins
// learn nothing about who exists) that the requester is an administrator. It returns the
// target's account, which must be local and active.
func (a *API) adminTarget(r *http.Request, who Requester) (storage.Account, error) {
	if err := a.requireAdmin(r.Context(), who); err != nil {
		return storage.Account{}, err
	}
	userID, err := roomPathVar(r, "userId")
	if err != nil {
		return storage.Account{}, err
	}
	u, err := event.ParseUserID(userID)
	if err != nil {
		return storage.Account{}, mxhttp.InvalidParam("%q is not a user id", userID)
	}
	if string(u.Domain()) != a.cfg.ServerName {
		return storage.Account{}, mxhttp.InvalidParam("user does not belong to this server")
	}
	acct, err := storage.GetAccount(r.Context(), a.db, u.Local())
	if errors.Is(err, storage.ErrNotFound) || err == nil && acct.DeactivatedTS != 0 {
		return storage.Account{}, mxhttp.NotFound("user not found")
	}
	if err != nil {
		return storage.Account{}, mxhttp.Internal(err)
	}
	if acct.IsAdmin && acct.Localpart != who.Localpart {
		return storage.Account{}, mxhttp.Forbidden("the user is another administrator")
	}
	return acct, nil
}

// restrictionEndpoints returns GET and PUT handlers for one restriction (lock or suspension):
// field is the JSON field ("locked", "suspended").
func (a *API) restrictionEndpoints(field string) (authedFunc, authedFunc) {
	get := func(x storage.AccountRestrictions) bool { return x.Suspended }
	set := func(ctx context.Context, tx *storage.Tx, localpart string, on bool, ts int64) error {
		return tx.SetAccountSuspended(ctx, localpart, on, ts)
	}
	if field == "locked" {
		get = func(x storage.AccountRestrictions) bool { return x.Locked }
		set = func(ctx context.Context, tx *storage.Tx, localpart string, on bool, ts int64) error {
			return tx.SetAccountLocked(ctx, localpart, on, ts)
		}
	}
	getH := func(r *http.Request, who Requester) (mxhttp.Response, error) {
		acct, err := a.adminTarget(r, who)
		if err != nil {
			return mxhttp.Response{}, err
		}
		res, err := storage.GetAccountRestrictions(r.Context(), a.db, acct.Localpart)
		if err != nil {
			return mxhttp.Response{}, mxhttp.Internal(err)
		}
		return mxhttp.OK(map[string]bool{field: get(res)}), nil
	}
	putH := func(r *http.Request, who Requester) (mxhttp.Response, error) {
		acct, err := a.adminTarget(r, who)
		if err != nil {
			return mxhttp.Response{}, err
		}
		if acct.Localpart == who.Localpart {
			return mxhttp.Response{}, mxhttp.Forbidden("you cannot restrict your own account")
		}
		var body map[string]any
		if err := mxhttp.ReadJSON(r, &body); err != nil {
			return mxhttp.Response{}, err
		}
		raw, present := body[field]
		if !present {
			return mxhttp.Response{}, mxhttp.MissingParam("%s is required", field)
		}
		on, ok := raw.(bool)
		if !ok {
			return mxhttp.Response{}, mxhttp.BadJSON("%s must be a boolean", field)
		}
		err = a.db.WithTx(r.Context(), func(tx *storage.Tx) error {
			return set(r.Context(), tx, acct.Localpart, on, a.now().UnixMilli())
		})
		if err != nil {
			return mxhttp.Response{}, mxhttp.Internal(err)
		}
		mxhttp.Logger(r.Context()).WithField("target", acct.Localpart).Infof("administrator set %s=%v", field, on)
		return mxhttp.OK(map[string]bool{field: on}), nil
	}
	return getH, putH
}

// whois is GET /admin/whois/{userId}: the user's devices and when each was last seen, for the
// user themself or an administrator. The IP address is there only if the operator keeps it
// (client.store_last_seen_ip); user agents are never stored.
func (a *API) whois(r *http.Request, who Requester) (mxhttp.Response, error) {
	userID, err := roomPathVar(r, "userId")
	if err != nil {
		return mxhttp.Response{}, err
	}
	if userID != who.UserID {
		if err := a.requireAdmin(r.Context(), who); err != nil {
			return mxhttp.Response{}, err
		}
	}
	u, err := event.ParseUserID(userID)
	if err != nil {
		return mxhttp.Response{}, mxhttp.InvalidParam("%q is not a user id", userID)
	}
	if string(u.Domain()) != a.cfg.ServerName {
		return mxhttp.Response{}, mxhttp.NotFound("user not found")
	}
	if _, err := storage.GetAccount(r.Context(), a.db, u.Local()); errors.Is(err, storage.ErrNotFound) {
		return mxhttp.Response{}, mxhttp.NotFound("user not found")
	} else if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	devices, err := storage.ListDevices(r.Context(), a.db, u.Local())
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	out := make(map[string]any, len(devices))
	for _, d := range devices {
		conn := map[string]any{"last_seen": d.LastSeenTS}
		if d.LastSeenIP != "" {
			conn["ip"] = d.LastSeenIP
		}
		out[d.DeviceID] = map[string]any{"sessions": []any{map[string]any{"connections": []any{conn}}}}
	}
	return mxhttp.OK(map[string]any{"user_id": userID, "devices": out}), nil
}
