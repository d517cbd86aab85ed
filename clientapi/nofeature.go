package clientapi

import (
	"net/http"

	"myelin/mxhttp"
)

// Endpoints of features this server does not offer, answered as the spec documents for a
// server without them rather than with 404 M_UNRECOGNIZED, which tells a client the endpoint
// itself is unknown.
//
// Not here: GET /_matrix/client/v1/auth_metadata. Its definition documents 404 M_UNRECOGNIZED
// as the answer of a server without the OAuth 2.0 API, which is what the router answers.

// Third-party networks (bridges): there are none, so no protocol is known and no lookup finds
// anything. The lookups answer 404 M_NOT_FOUND, as documented for "not found".
func (a *API) thirdPartyProtocols(*http.Request, Requester) (mxhttp.Response, error) {
	return mxhttp.OK(map[string]any{}), nil
}

func (a *API) thirdPartyUnknownProtocol(*http.Request, Requester) (mxhttp.Response, error) {
	return mxhttp.Response{}, mxhttp.NotFound("no bridge serves this protocol")
}

// thirdPartyReverseLookup answers GET /thirdparty/location?alias= and /thirdparty/user?userid=.
func thirdPartyReverseLookup(param string) authedFunc {
	return func(r *http.Request, _ Requester) (mxhttp.Response, error) {
		if r.URL.Query().Get(param) == "" {
			return mxhttp.Response{}, mxhttp.MissingParam("%s is required", param)
		}
		return mxhttp.Response{}, mxhttp.NotFound("no bridge knows this %s", param)
	}
}

// loginGetToken is POST /_matrix/client/v1/login/get_token. The m.get_login_token capability
// is off: logging in another device with a token minted by this one is not offered. The spec
// documents 400 for "the user does not have an ability to generate tokens".
func (a *API) loginGetToken(*http.Request, Requester) (mxhttp.Response, error) {
	return mxhttp.Response{}, &mxhttp.Error{Status: http.StatusBadRequest, Code: "M_FORBIDDEN",
		Message: "this server does not issue login tokens (see the m.get_login_token capability)"}
}

// ssoRedirect answers GET /login/sso/redirect[/{idpId}]. There is no single sign-on (GET /login
// offers only m.login.password): no identity provider is known, which the spec documents as
// 404 for a named one; the unnamed redirect answers the same.
func (a *API) ssoRedirect(*http.Request) (mxhttp.Response, error) {
	return mxhttp.Response{}, mxhttp.NotFound("this server offers no single sign-on")
}

// Application services: none are registered, so no access token is an application service's.
// Both endpoints document 403 M_FORBIDDEN for a token that is not the application service's.
func (a *API) appserviceOnly(*http.Request, Requester) (mxhttp.Response, error) {
	return mxhttp.Response{}, mxhttp.Forbidden("the access token does not belong to an application service")
}

// SupportInfo is what /.well-known/matrix/support announces (config support.*).
type SupportInfo struct {
	Contacts []SupportContact
	Page     string
}

// SupportContact is one way to reach the server's administrators.
type SupportContact struct {
	MatrixID     string `json:"matrix_id,omitempty"`
	EmailAddress string `json:"email_address,omitempty"`
	Role         string `json:"role"`
}

// wellKnownSupport is GET /.well-known/matrix/support: 404 when nothing is configured, as the
// spec says ("No server support information available").
func (a *API) wellKnownSupport(*http.Request) (mxhttp.Response, error) {
	s := a.cfg.Support
	if len(s.Contacts) == 0 && s.Page == "" {
		return mxhttp.Response{}, mxhttp.NotFound("no support information is configured")
	}
	body := map[string]any{}
	if len(s.Contacts) > 0 {
		body["contacts"] = s.Contacts
	}
	if s.Page != "" {
		body["support_page"] = s.Page
	}
	return mxhttp.OK(body), nil
}

// wellKnownPolicyServer is GET /.well-known/matrix/policy_server: this server is no policy
// server, which the spec documents as 404.
func (a *API) wellKnownPolicyServer(*http.Request) (mxhttp.Response, error) {
	return mxhttp.Response{}, mxhttp.NotFound("this server is not a policy server")
}
