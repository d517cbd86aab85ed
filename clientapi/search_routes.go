package clientapi

import (
	"net/http"

	"github.com/gorilla/mux"

	"myelin/mxhttp"
)

// searchRoutes registers server-side search (search.go), the user directory
// (userdirectory.go) and mutual rooms (mutualrooms.go).
func (a *API) searchRoutes(r *mux.Router) {
	handle := func(path string, h authedFunc, method string) {
		mxhttp.Route(r, "/_matrix/client"+path).Handler(mxhttp.Handle(a.authed(h))).Methods(method)
	}
	handle("/v3/user_directory/search", a.searchUserDirectory, http.MethodPost)
	handle("/v1/mutual_rooms", a.mutualRooms, http.MethodGet)
	if a.cfg.Rooms != nil {
		handle("/v3/search", a.search, http.MethodPost)
	}
}
