package clientapi

import (
	"net/http"

	"github.com/gorilla/mux"

	"myelin/mxhttp"
)

// accountRoutes registers the account and authentication endpoints.
func (a *API) accountRoutes(r *mux.Router) {
	handle := func(path string, h mxhttp.HandlerFunc, methods ...string) {
		mxhttp.Route(r, "/_matrix/client/v3"+path).Handler(mxhttp.Handle(h)).Methods(methods...)
	}
	handle("/login", a.loginFlows, http.MethodGet)
	handle("/login", a.login, http.MethodPost)
	handle("/register", a.register, http.MethodPost)
	handle("/register/available", a.registerAvailable, http.MethodGet)
	handle("/logout", a.authed(a.logout), http.MethodPost)
	handle("/logout/all", a.authed(a.logoutAll), http.MethodPost)
	handle("/refresh", a.refresh, http.MethodPost)
	handle("/account/whoami", a.authed(a.whoami), http.MethodGet)
	handle("/account/password", a.optionalAuth(a.changePassword), http.MethodPost)
	handle("/account/deactivate", a.optionalAuth(a.deactivate), http.MethodPost)
	handle("/devices", a.authed(a.listDevices), http.MethodGet)
	handle("/devices/{deviceId}", a.authed(a.getDevice), http.MethodGet)
	handle("/devices/{deviceId}", a.authed(a.updateDevice), http.MethodPut)
	handle("/devices/{deviceId}", a.authed(a.deleteDevice), http.MethodDelete)
	handle("/delete_devices", a.authed(a.deleteDevices), http.MethodPost)
	handle("/capabilities", a.authed(a.capabilities), http.MethodGet)

	mxhttp.Route(r, "/_matrix/client/v1/register/m.login.registration_token/validity").Handler(
		mxhttp.Handle(a.registrationTokenValidity)).Methods(http.MethodGet)
}
