package clientapi

import (
	"net/http"

	"github.com/gorilla/mux"

	"myelin/mxhttp"
)

// miscRoutes registers the smaller modules of issue #7: tags, reports, TURN, OpenID, server
// administration, third-party identifiers, server contact discovery, the deprecated /events
// and initialSync family, and the answers of features this server does not offer.
func (a *API) miscRoutes(r *mux.Router) {
	const get, put, post, del = http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete
	v3 := func(path string, h authedFunc, methods ...string) {
		mxhttp.Route(r, "/_matrix/client/v3"+path).Handler(mxhttp.Handle(a.authed(h))).Methods(methods...)
	}
	v1 := func(path string, h authedFunc, methods ...string) {
		mxhttp.Route(r, "/_matrix/client/v1"+path).Handler(mxhttp.Handle(a.authed(h))).Methods(methods...)
	}
	open := func(path string, h mxhttp.HandlerFunc, methods ...string) {
		mxhttp.Route(r, path).Handler(mxhttp.Handle(h)).Methods(methods...)
	}

	v3("/user/{userId}/rooms/{roomId}/tags", a.getTags, get)
	v3("/user/{userId}/rooms/{roomId}/tags/{tag}", a.putTag, put)
	v3("/user/{userId}/rooms/{roomId}/tags/{tag}", a.deleteTag, del)

	v3("/rooms/{roomId}/report/{eventId}", a.reportEvent, post)
	v3("/rooms/{roomId}/report", a.reportRoom, post)
	v3("/users/{userId}/report", a.reportUser, post)

	v3("/voip/turnServer", a.turnServer, get)
	v3("/user/{userId}/openid/request_token", a.requestOpenIDToken, post)

	v3("/admin/whois/{userId}", a.whois, get)
	getSuspended, putSuspended := a.restrictionEndpoints("suspended")
	getLocked, putLocked := a.restrictionEndpoints("locked")
	v1("/admin/suspend/{userId}", getSuspended, get)
	v1("/admin/suspend/{userId}", putSuspended, put)
	v1("/admin/lock/{userId}", getLocked, get)
	v1("/admin/lock/{userId}", putLocked, put)

	v3("/account/3pid", a.listThreepids, get)
	v3("/account/3pid", a.addThreepid, post)
	v3("/account/3pid/add", a.addThreepid, post)
	v3("/account/3pid/bind", a.bindThreepid, post)
	v3("/account/3pid/delete", a.removeThreepid, post)
	v3("/account/3pid/unbind", a.removeThreepid, post)
	for _, prefix := range []string{"/account/3pid", "/register", "/account/password"} {
		open("/_matrix/client/v3"+prefix+"/email/requestToken", requestThreepidToken("email"), post)
		open("/_matrix/client/v3"+prefix+"/msisdn/requestToken", requestThreepidToken("msisdn"), post)
	}

	v3("/thirdparty/protocols", a.thirdPartyProtocols, get)
	v3("/thirdparty/protocol/{protocol}", a.thirdPartyUnknownProtocol, get)
	v3("/thirdparty/location/{protocol}", a.thirdPartyUnknownProtocol, get)
	v3("/thirdparty/user/{protocol}", a.thirdPartyUnknownProtocol, get)
	v3("/thirdparty/location", thirdPartyReverseLookup("alias"), get)
	v3("/thirdparty/user", thirdPartyReverseLookup("userid"), get)

	v1("/login/get_token", a.loginGetToken, post)
	open("/_matrix/client/v3/login/sso/redirect", a.ssoRedirect, get)
	open("/_matrix/client/v3/login/sso/redirect/{idpId}", a.ssoRedirect, get)
	v1("/appservice/{appserviceId}/ping", a.appserviceOnly, post)
	v3("/directory/list/appservice/{networkId}/{roomId}", a.appserviceOnly, put)

	open("/.well-known/matrix/support", a.wellKnownSupport, get)
	open("/.well-known/matrix/policy_server", a.wellKnownPolicyServer, get)

	if a.cfg.Rooms != nil {
		v3("/events/{eventId}", a.legacyEvent, get)
		v3("/rooms/{roomId}/initialSync", a.roomInitialSync, get)
		v3("/initialSync", a.initialSync, get)
		v3("/events", a.legacyEvents, get)
	}
}
