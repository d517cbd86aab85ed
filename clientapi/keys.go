package clientapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/gorilla/mux"

	"myelin/keys/e2e"
	"myelin/mxhttp"
	"myelin/storage"
)

// e2eRoutes registers the end-to-end encryption endpoints: keys, cross-signing, key backup and
// send-to-device.
func (a *API) e2eRoutes(r *mux.Router) {
	store := a.cfg.E2E
	if store == nil {
		// Without the room server, /keys/changes reports only the user's own changes.
		store = e2e.New(a.db, a.cfg.ServerName, e2e.Options{Log: a.log})
	}
	h := &e2eHandlers{API: a, store: store}
	handle := func(path string, fn authedFunc, methods ...string) {
		mxhttp.Route(r, "/_matrix/client/v3"+path).Handler(mxhttp.Handle(a.authed(fn))).Methods(methods...)
	}
	handle("/keys/upload", h.upload, http.MethodPost)
	handle("/keys/query", h.query, http.MethodPost)
	handle("/keys/claim", h.claim, http.MethodPost)
	handle("/keys/changes", h.changes, http.MethodGet)
	handle("/keys/device_signing/upload", h.deviceSigningUpload, http.MethodPost)
	handle("/keys/signatures/upload", h.signaturesUpload, http.MethodPost)

	handle("/room_keys/version", h.createBackup, http.MethodPost)
	handle("/room_keys/version", h.getBackup, http.MethodGet)
	handle("/room_keys/version/{version}", h.getBackup, http.MethodGet)
	handle("/room_keys/version/{version}", h.updateBackup, http.MethodPut)
	handle("/room_keys/version/{version}", h.deleteBackup, http.MethodDelete)
	for _, path := range []string{"/room_keys/keys", "/room_keys/keys/{roomId}", "/room_keys/keys/{roomId}/{sessionId}"} {
		handle(path, h.putBackupKeys, http.MethodPut)
		handle(path, h.getBackupKeys, http.MethodGet)
		handle(path, h.deleteBackupKeys, http.MethodDelete)
	}

	handle("/sendToDevice/{eventType}/{txnId}", h.sendToDevice, http.MethodPut)
}

// e2eHandlers serve the end-to-end encryption endpoints from the key store.
type e2eHandlers struct {
	*API
	store *e2e.Store
}

// e2eError renders a key store failure as the Matrix error the spec names for it.
func e2eError(err error) error {
	var e *e2e.Error
	var wrong *e2e.WrongBackupVersionError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &wrong):
		return (&mxhttp.Error{Status: http.StatusForbidden, Code: "M_WRONG_ROOM_KEYS_VERSION", Message: "wrong backup version"}).
			With("current_version", wrong.CurrentVersion)
	case errors.As(err, &e):
		status := http.StatusBadRequest
		switch {
		case errors.Is(err, e2e.ErrForbidden):
			status = http.StatusForbidden
		case errors.Is(err, e2e.ErrNotFound):
			status = http.StatusNotFound
		}
		return &mxhttp.Error{Status: status, Code: e.Kind.Error(), Message: e.Msg}
	default:
		return mxhttp.AsError(err)
	}
}

func pathVar(r *http.Request, name string) (string, error) {
	v, err := url.PathUnescape(mux.Vars(r)[name])
	if err != nil {
		return "", mxhttp.InvalidParam("%s is not a valid path segment", name)
	}
	return v, nil
}

// upload is POST /keys/upload.
func (h *e2eHandlers) upload(r *http.Request, who Requester) (mxhttp.Response, error) {
	var req e2e.Upload
	if err := mxhttp.ReadJSON(r, &req); err != nil {
		return mxhttp.Response{}, err
	}
	counts, err := h.store.Upload(r.Context(), who.UserID, who.DeviceID, req)
	if err != nil {
		return mxhttp.Response{}, e2eError(err)
	}
	return mxhttp.OK(map[string]any{"one_time_key_counts": counts}), nil
}

// query is POST /keys/query.
func (h *e2eHandlers) query(r *http.Request, who Requester) (mxhttp.Response, error) {
	var req struct {
		DeviceKeys map[string][]string `json:"device_keys"`
		Timeout    *int64              `json:"timeout"`
	}
	if err := mxhttp.ReadJSON(r, &req); err != nil {
		return mxhttp.Response{}, err
	}
	if req.DeviceKeys == nil {
		return mxhttp.Response{}, mxhttp.MissingParam("device_keys is required")
	}
	res, err := h.store.Query(r.Context(), who.UserID, req.DeviceKeys)
	if err != nil {
		return mxhttp.Response{}, e2eError(err)
	}
	return mxhttp.OK(res), nil
}

// claim is POST /keys/claim.
func (h *e2eHandlers) claim(r *http.Request, who Requester) (mxhttp.Response, error) {
	var req struct {
		OneTimeKeys map[string]map[string]string `json:"one_time_keys"`
		Timeout     *int64                       `json:"timeout"`
	}
	if err := mxhttp.ReadJSON(r, &req); err != nil {
		return mxhttp.Response{}, err
	}
	if req.OneTimeKeys == nil {
		return mxhttp.Response{}, mxhttp.MissingParam("one_time_keys is required")
	}
	res, err := h.store.Claim(r.Context(), req.OneTimeKeys)
	if err != nil {
		return mxhttp.Response{}, e2eError(err)
	}
	return mxhttp.OK(res), nil
}

// deviceListPosition reads the device_lists stream position from a sync token.
//
// Until /sync defines its token (a vector of stream positions), the token is the decimal
// device_lists position itself, as CurrentDeviceListPosition returns it. The sync code replaces
// this function with one that extracts that component from its tokens.
func deviceListPosition(token string) (int64, error) {
	pos, err := strconv.ParseInt(token, 10, 64)
	if err != nil || pos < 0 {
		return 0, mxhttp.InvalidParam("not a sync token")
	}
	return pos, nil
}

// changes is GET /keys/changes. The upper bound is the stream's current position rather than
// to: including a user who changed after to only makes the client query once more.
func (h *e2eHandlers) changes(r *http.Request, who Requester) (mxhttp.Response, error) {
	q := r.URL.Query()
	if !q.Has("from") || !q.Has("to") {
		return mxhttp.Response{}, mxhttp.MissingParam("from and to are required")
	}
	from, err := deviceListPosition(q.Get("from"))
	if err != nil {
		return mxhttp.Response{}, err
	}
	if _, err := deviceListPosition(q.Get("to")); err != nil {
		return mxhttp.Response{}, err
	}
	ctx := r.Context()
	to, err := h.store.CurrentDeviceListPosition(ctx)
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	res, err := h.store.DeviceListChanges(ctx, who.UserID, from, to)
	if err != nil {
		return mxhttp.Response{}, e2eError(err)
	}
	return mxhttp.OK(res), nil
}

// deviceSigningUpload is POST /keys/device_signing/upload. It asks for the password only when
// the upload would replace keys the user already has.
func (h *e2eHandlers) deviceSigningUpload(r *http.Request, who Requester) (mxhttp.Response, error) {
	var req struct {
		e2e.CrossSigningUpload
		Auth json.RawMessage `json:"auth"`
	}
	if err := mxhttp.ReadJSON(r, &req); err != nil {
		return mxhttp.Response{}, err
	}
	ctx := r.Context()
	need, err := h.store.CrossSigningNeedsAuth(ctx, who.UserID, req.CrossSigningUpload)
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	var session *storage.UIASession
	runUIA := func() (*mxhttp.Response, error) {
		var challenge *mxhttp.Response
		session, challenge, err = h.interactiveAuth(r, req.Auth,
			uiaSpec{operation: "POST /keys/device_signing/upload", localpart: who.Localpart, flows: passwordFlows})
		return challenge, err
	}
	if need {
		if challenge, err := runUIA(); err != nil || challenge != nil {
			return deref(challenge), err
		}
	}
	err = h.store.UploadCrossSigningKeys(ctx, who.UserID, req.CrossSigningUpload, session != nil)
	if errors.Is(err, e2e.ErrAuthRequired) {
		// Keys were uploaded by another device between the check and the upload.
		challenge, err := runUIA()
		if err != nil || challenge != nil {
			return deref(challenge), err
		}
		err = h.store.UploadCrossSigningKeys(ctx, who.UserID, req.CrossSigningUpload, true)
	}
	if err != nil {
		return mxhttp.Response{}, e2eError(err)
	}
	if session != nil {
		if err := h.db.WithTx(ctx, func(tx *storage.Tx) error { return finishUIA(ctx, tx, session) }); err != nil {
			mxhttp.Logger(ctx).WithError(err).Warn("could not end a completed auth session")
		}
	}
	return mxhttp.Empty(), nil
}

// signaturesUpload is POST /keys/signatures/upload.
func (h *e2eHandlers) signaturesUpload(r *http.Request, who Requester) (mxhttp.Response, error) {
	var req map[string]map[string]json.RawMessage
	if err := mxhttp.ReadJSON(r, &req); err != nil {
		return mxhttp.Response{}, err
	}
	failures, err := h.store.UploadSignatures(r.Context(), who.UserID, req)
	if err != nil {
		return mxhttp.Response{}, e2eError(err)
	}
	return mxhttp.OK(map[string]any{"failures": failures}), nil
}
