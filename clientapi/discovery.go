package clientapi

import (
	"net/http"

	"myelin/mxhttp"
)

// specVersions are the Client-Server API versions whose endpoints this server implements. A
// version is listed only once every endpoint it requires answers per its definition; clients use
// this list to decide what to call.
var specVersions = []string{}

func (a *API) versions(*http.Request) (mxhttp.Response, error) {
	return mxhttp.OK(map[string]any{
		"versions":          specVersions,
		"unstable_features": map[string]bool{},
	}), nil
}

func (a *API) wellKnownClient(*http.Request) (mxhttp.Response, error) {
	if a.cfg.PublicBaseURL == "" {
		return mxhttp.Response{}, mxhttp.NotFound("no client discovery information is configured")
	}
	return mxhttp.OK(map[string]any{
		"m.homeserver": map[string]string{"base_url": a.cfg.PublicBaseURL},
	}), nil
}

func (a *API) wellKnownServer(*http.Request) (mxhttp.Response, error) {
	if a.cfg.WellKnownServer == "" {
		return mxhttp.Response{}, mxhttp.NotFound("no server delegation is configured")
	}
	return mxhttp.OK(map[string]string{"m.server": a.cfg.WellKnownServer}), nil
}
