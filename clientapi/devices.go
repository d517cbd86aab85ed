package clientapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"

	"github.com/gorilla/mux"

	"myelin/mxhttp"
	"myelin/storage"
)

// clientDevice is the client_device object of the spec.
type clientDevice struct {
	DeviceID    string `json:"device_id"`
	DisplayName string `json:"display_name,omitempty"`
	LastSeenIP  string `json:"last_seen_ip,omitempty"`
	LastSeenTS  int64  `json:"last_seen_ts,omitempty"`
}

func toClientDevice(d storage.Device) clientDevice {
	return clientDevice{DeviceID: d.DeviceID, DisplayName: d.DisplayName, LastSeenIP: d.LastSeenIP, LastSeenTS: d.LastSeenTS}
}

// pathDeviceID returns the {deviceId} path parameter, decoded (the router matches encoded paths).
func pathDeviceID(r *http.Request) (string, error) {
	id, err := url.PathUnescape(mux.Vars(r)["deviceId"])
	if err != nil || id == "" {
		return "", mxhttp.InvalidParam("invalid device id in the path")
	}
	return id, nil
}

func (a *API) listDevices(r *http.Request, who Requester) (mxhttp.Response, error) {
	devices, err := storage.ListDevices(r.Context(), a.db, who.Localpart)
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	out := make([]clientDevice, 0, len(devices))
	for _, d := range devices {
		out = append(out, toClientDevice(d))
	}
	return mxhttp.OK(map[string]any{"devices": out}), nil
}

func (a *API) getDevice(r *http.Request, who Requester) (mxhttp.Response, error) {
	id, err := pathDeviceID(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	d, err := storage.GetDevice(r.Context(), a.db, who.Localpart, id)
	if errors.Is(err, storage.ErrNotFound) {
		return mxhttp.Response{}, mxhttp.NotFound("you have no device with this id")
	}
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	return mxhttp.OK(toClientDevice(d)), nil
}

// updateDevice is PUT /devices/{deviceId}. Only application services may create devices with it,
// and this server has none yet, so an unknown device is 404.
func (a *API) updateDevice(r *http.Request, who Requester) (mxhttp.Response, error) {
	id, err := pathDeviceID(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	var req struct {
		DisplayName *string `json:"display_name"`
	}
	if err := mxhttp.ReadJSON(r, &req); err != nil {
		return mxhttp.Response{}, err
	}
	ctx := r.Context()
	err = a.db.WithTx(ctx, func(tx *storage.Tx) error {
		if req.DisplayName == nil {
			_, err := storage.GetDevice(ctx, tx, who.Localpart, id)
			return err
		}
		return tx.SetDeviceDisplayName(ctx, who.Localpart, id, *req.DisplayName)
	})
	if errors.Is(err, storage.ErrNotFound) {
		return mxhttp.Response{}, mxhttp.NotFound("you have no device with this id")
	}
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	return mxhttp.Empty(), nil
}

// deleteDevice is DELETE /devices/{deviceId}, behind the password. A device already gone is
// success, as the spec says.
func (a *API) deleteDevice(r *http.Request, who Requester) (mxhttp.Response, error) {
	id, err := pathDeviceID(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	var req struct {
		Auth json.RawMessage `json:"auth"`
	}
	if err := readOptionalJSON(r, &req); err != nil {
		return mxhttp.Response{}, err
	}
	return a.removeDevices(r, who, req.Auth, "DELETE /devices", []string{id})
}

// deleteDevices is POST /delete_devices, behind the password.
func (a *API) deleteDevices(r *http.Request, who Requester) (mxhttp.Response, error) {
	var req struct {
		Devices *[]string       `json:"devices"`
		Auth    json.RawMessage `json:"auth"`
	}
	if err := mxhttp.ReadJSON(r, &req); err != nil {
		return mxhttp.Response{}, err
	}
	if req.Devices == nil {
		return mxhttp.Response{}, mxhttp.MissingParam("devices is required")
	}
	return a.removeDevices(r, who, req.Auth, "POST /delete_devices", *req.Devices)
}

func (a *API) removeDevices(r *http.Request, who Requester, auth json.RawMessage, operation string, ids []string) (mxhttp.Response, error) {
	session, challenge, err := a.interactiveAuth(r, auth, uiaSpec{operation: operation, localpart: who.Localpart, flows: passwordFlows})
	if err != nil || challenge != nil {
		return deref(challenge), err
	}
	ctx := r.Context()
	err = a.db.WithTx(ctx, func(tx *storage.Tx) error {
		deleted, err := tx.DeleteDevices(ctx, who.Localpart, ids)
		if err != nil {
			return err
		}
		if err := a.devicesDeleted(ctx, tx, who.Localpart, deleted); err != nil {
			return err
		}
		return finishUIA(ctx, tx, session)
	})
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	return mxhttp.Empty(), nil
}

// readOptionalJSON is ReadJSON for endpoints whose body clients often leave out entirely (the
// first, unauthenticated DELETE of a device): an empty body is an empty object.
func readOptionalJSON(r *http.Request, v any) error {
	if r.ContentLength == 0 && r.Header.Get("Transfer-Encoding") == "" {
		return nil
	}
	return mxhttp.ReadJSON(r, v)
}
