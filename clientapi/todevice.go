package clientapi

import (
	"encoding/json"
	"net/http"

	"myelin/mxhttp"
)

// sendToDevice is PUT /sendToDevice/{eventType}/{txnId}. The transaction id is scoped to the
// sending device, so a retried request delivers nothing twice.
func (h *e2eHandlers) sendToDevice(r *http.Request, who Requester) (mxhttp.Response, error) {
	eventType, err := pathVar(r, "eventType")
	if err != nil {
		return mxhttp.Response{}, err
	}
	txnID, err := pathVar(r, "txnId")
	if err != nil {
		return mxhttp.Response{}, err
	}
	var req struct {
		Messages map[string]map[string]json.RawMessage `json:"messages"`
	}
	if err := mxhttp.ReadJSON(r, &req); err != nil {
		return mxhttp.Response{}, err
	}
	if req.Messages == nil {
		return mxhttp.Response{}, mxhttp.MissingParam("messages is required")
	}
	if err := h.store.SendToDevice(r.Context(), who.UserID, who.DeviceID, eventType, txnID, req.Messages); err != nil {
		return mxhttp.Response{}, e2eError(err)
	}
	return mxhttp.Empty(), nil
}
