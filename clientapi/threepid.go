package clientapi

import (
	"encoding/json"
	"net/http"

	"myelin/mxhttp"
)

// Third-party identifiers (e-mail addresses, phone numbers). Myelin binds none: it sends no
// e-mail or SMS, keeps no addresses, and talks to no identity server, so that a Matrix account
// need not be tied to a person's address book. The endpoints answer what the spec documents
// for a server that does not allow them (the m.3pid_changes capability says so too):
//   - GET /account/3pid lists no identifiers;
//   - every requestToken endpoint answers 403 M_THREEPID_DENIED ("does not allow the
//     third-party identifier");
//   - adding one answers 403 M_THREEPID_AUTH_FAILED: no validation session can exist;
//   - binding through an identity server answers 400 M_SERVER_NOT_TRUSTED (no identity server
//     is trusted);
//   - removing or unbinding one succeeds with id_server_unbind_result "no-support": there is
//     nothing to remove and no identity server to unbind from.

func threepidDenied() *mxhttp.Error {
	return &mxhttp.Error{Status: http.StatusForbidden, Code: "M_THREEPID_DENIED",
		Message: "this server does not use e-mail addresses or phone numbers"}
}

// readObject reads a JSON object body and checks that the required fields are present.
func readObject(r *http.Request, required ...string) (map[string]json.RawMessage, error) {
	var body map[string]json.RawMessage
	if err := mxhttp.ReadJSON(r, &body); err != nil {
		return nil, err
	}
	if body == nil {
		return nil, mxhttp.BadJSON("the request body must be a JSON object")
	}
	for _, f := range required {
		if _, ok := body[f]; !ok {
			return nil, mxhttp.MissingParam("%s is required", f)
		}
	}
	return body, nil
}

// listThreepids is GET /account/3pid.
func (a *API) listThreepids(*http.Request, Requester) (mxhttp.Response, error) {
	return mxhttp.OK(map[string]any{"threepids": []any{}}), nil
}

// requestThreepidToken answers the six requestToken endpoints (e-mail and SMS for
// /account/3pid, /register and /account/password).
func requestThreepidToken(medium string) mxhttp.HandlerFunc {
	required := []string{"client_secret", "send_attempt", "email"}
	if medium == "msisdn" {
		required = []string{"client_secret", "send_attempt", "country", "phone_number"}
	}
	return func(r *http.Request) (mxhttp.Response, error) {
		if _, err := readObject(r, required...); err != nil {
			return mxhttp.Response{}, err
		}
		return mxhttp.Response{}, threepidDenied()
	}
}

// addThreepid is POST /account/3pid/add and the deprecated POST /account/3pid.
func (a *API) addThreepid(r *http.Request, _ Requester) (mxhttp.Response, error) {
	if _, err := readObject(r); err != nil {
		return mxhttp.Response{}, err
	}
	return mxhttp.Response{}, &mxhttp.Error{Status: http.StatusForbidden, Code: "M_THREEPID_AUTH_FAILED",
		Message: "no third-party identifier was validated: this server validates none"}
}

// bindThreepid is POST /account/3pid/bind.
func (a *API) bindThreepid(r *http.Request, _ Requester) (mxhttp.Response, error) {
	if _, err := readObject(r, "client_secret", "id_server", "id_access_token", "sid"); err != nil {
		return mxhttp.Response{}, err
	}
	return mxhttp.Response{}, &mxhttp.Error{Status: http.StatusBadRequest, Code: "M_SERVER_NOT_TRUSTED",
		Message: "this server does not talk to identity servers"}
}

// removeThreepid is POST /account/3pid/delete and /account/3pid/unbind.
func (a *API) removeThreepid(r *http.Request, _ Requester) (mxhttp.Response, error) {
	if _, err := readObject(r, "medium", "address"); err != nil {
		return mxhttp.Response{}, err
	}
	return mxhttp.OK(map[string]string{"id_server_unbind_result": "no-support"}), nil
}
