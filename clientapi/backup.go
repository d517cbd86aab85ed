package clientapi

import (
	"encoding/json"
	"net/http"

	"myelin/keys/e2e"
	"myelin/mxhttp"
	"myelin/storage"
)

// createBackup is POST /room_keys/version.
func (h *e2eHandlers) createBackup(r *http.Request, who Requester) (mxhttp.Response, error) {
	var req struct {
		Algorithm string          `json:"algorithm"`
		AuthData  json.RawMessage `json:"auth_data"`
	}
	if err := mxhttp.ReadJSON(r, &req); err != nil {
		return mxhttp.Response{}, err
	}
	if req.Algorithm == "" || len(req.AuthData) == 0 {
		return mxhttp.Response{}, mxhttp.MissingParam("algorithm and auth_data are required")
	}
	v, err := h.store.CreateBackup(r.Context(), who.UserID, req.Algorithm, req.AuthData)
	if err != nil {
		return mxhttp.Response{}, e2eError(err)
	}
	return mxhttp.OK(map[string]string{"version": v}), nil
}

// getBackup is GET /room_keys/version and GET /room_keys/version/{version}.
func (h *e2eHandlers) getBackup(r *http.Request, who Requester) (mxhttp.Response, error) {
	version, err := pathVar(r, "version")
	if err != nil {
		return mxhttp.Response{}, err
	}
	info, err := h.store.Backup(r.Context(), who.UserID, version)
	if err != nil {
		return mxhttp.Response{}, e2eError(err)
	}
	return mxhttp.OK(info), nil
}

// updateBackup is PUT /room_keys/version/{version}.
func (h *e2eHandlers) updateBackup(r *http.Request, who Requester) (mxhttp.Response, error) {
	version, err := pathVar(r, "version")
	if err != nil {
		return mxhttp.Response{}, err
	}
	var req struct {
		Algorithm string          `json:"algorithm"`
		AuthData  json.RawMessage `json:"auth_data"`
		Version   string          `json:"version"`
	}
	if err := mxhttp.ReadJSON(r, &req); err != nil {
		return mxhttp.Response{}, err
	}
	if req.Algorithm == "" || len(req.AuthData) == 0 {
		return mxhttp.Response{}, mxhttp.MissingParam("algorithm and auth_data are required")
	}
	if err := h.store.UpdateBackup(r.Context(), who.UserID, version, req.Algorithm, req.Version, req.AuthData); err != nil {
		return mxhttp.Response{}, e2eError(err)
	}
	return mxhttp.Empty(), nil
}

// deleteBackup is DELETE /room_keys/version/{version}.
func (h *e2eHandlers) deleteBackup(r *http.Request, who Requester) (mxhttp.Response, error) {
	version, err := pathVar(r, "version")
	if err != nil {
		return mxhttp.Response{}, err
	}
	if err := h.store.DeleteBackup(r.Context(), who.UserID, version); err != nil {
		return mxhttp.Response{}, e2eError(err)
	}
	return mxhttp.Empty(), nil
}

// backupScope reads the version query parameter and the room and session path segments shared
// by the three levels of /room_keys/keys.
func backupScope(r *http.Request) (version, roomID, sessionID string, err error) {
	version = r.URL.Query().Get("version")
	if version == "" {
		return "", "", "", mxhttp.MissingParam("the version query parameter is required")
	}
	if roomID, err = pathVar(r, "roomId"); err != nil {
		return "", "", "", err
	}
	sessionID, err = pathVar(r, "sessionId")
	return version, roomID, sessionID, err
}

type roomKeyBackup struct {
	Sessions map[string]e2e.KeyBackupData `json:"sessions"`
}

// putBackupKeys is PUT /room_keys/keys[/{roomId}[/{sessionId}]]; the body is, by level, the
// rooms object, one room's sessions object, or one session's key.
func (h *e2eHandlers) putBackupKeys(r *http.Request, who Requester) (mxhttp.Response, error) {
	version, roomID, sessionID, err := backupScope(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	var rooms map[string]map[string]e2e.KeyBackupData
	switch {
	case roomID == "":
		var req struct {
			Rooms map[string]roomKeyBackup `json:"rooms"`
		}
		if err := mxhttp.ReadJSON(r, &req); err != nil {
			return mxhttp.Response{}, err
		}
		if req.Rooms == nil {
			return mxhttp.Response{}, mxhttp.MissingParam("rooms is required")
		}
		rooms = map[string]map[string]e2e.KeyBackupData{}
		for id, room := range req.Rooms {
			rooms[id] = room.Sessions
		}
	case sessionID == "":
		var req roomKeyBackup
		if err := mxhttp.ReadJSON(r, &req); err != nil {
			return mxhttp.Response{}, err
		}
		if req.Sessions == nil {
			return mxhttp.Response{}, mxhttp.MissingParam("sessions is required")
		}
		rooms = map[string]map[string]e2e.KeyBackupData{roomID: req.Sessions}
	default:
		var req e2e.KeyBackupData
		if err := mxhttp.ReadJSON(r, &req); err != nil {
			return mxhttp.Response{}, err
		}
		rooms = map[string]map[string]e2e.KeyBackupData{roomID: {sessionID: req}}
	}
	res, err := h.store.PutBackupKeys(r.Context(), who.UserID, version, rooms)
	if err != nil {
		return mxhttp.Response{}, e2eError(err)
	}
	return mxhttp.OK(res), nil
}

func keyBackupData(k storage.BackupKey) e2e.KeyBackupData {
	return e2e.KeyBackupData{
		FirstMessageIndex: &k.FirstMessageIndex, ForwardedCount: &k.ForwardedCount, IsVerified: &k.IsVerified,
		SessionData: k.SessionData,
	}
}

// getBackupKeys is GET /room_keys/keys[/{roomId}[/{sessionId}]]. Missing keys are an empty
// object at the first two levels and M_NOT_FOUND at the session level, as the spec says.
func (h *e2eHandlers) getBackupKeys(r *http.Request, who Requester) (mxhttp.Response, error) {
	version, roomID, sessionID, err := backupScope(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	stored, err := h.store.BackupKeys(r.Context(), who.UserID, version, roomID, sessionID)
	if err != nil {
		return mxhttp.Response{}, e2eError(err)
	}
	switch {
	case roomID == "":
		rooms := map[string]roomKeyBackup{}
		for _, k := range stored {
			room, ok := rooms[k.RoomID]
			if !ok {
				room = roomKeyBackup{Sessions: map[string]e2e.KeyBackupData{}}
				rooms[k.RoomID] = room
			}
			room.Sessions[k.SessionID] = keyBackupData(k)
		}
		return mxhttp.OK(map[string]any{"rooms": rooms}), nil
	case sessionID == "":
		room := roomKeyBackup{Sessions: map[string]e2e.KeyBackupData{}}
		for _, k := range stored {
			room.Sessions[k.SessionID] = keyBackupData(k)
		}
		return mxhttp.OK(room), nil
	default:
		if len(stored) == 0 {
			return mxhttp.Response{}, mxhttp.NotFound("no key found for this session")
		}
		return mxhttp.OK(keyBackupData(stored[0])), nil
	}
}

// deleteBackupKeys is DELETE /room_keys/keys[/{roomId}[/{sessionId}]].
func (h *e2eHandlers) deleteBackupKeys(r *http.Request, who Requester) (mxhttp.Response, error) {
	version, roomID, sessionID, err := backupScope(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	res, err := h.store.DeleteBackupKeys(r.Context(), who.UserID, version, roomID, sessionID)
	if err != nil {
		return mxhttp.Response{}, e2eError(err)
	}
	return mxhttp.OK(res), nil
}
