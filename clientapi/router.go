// Package clientapi is the Client-Server API front door: routing, CORS, and a handler file per area.
package clientapi

import (
	"net/http"

	"github.com/gorilla/mux"
	"github.com/sirupsen/logrus"

	"myelin/mxhttp"
)

// Config is what the client API needs from the server configuration.
type Config struct {
	ServerName string
	// PublicBaseURL is announced by /.well-known/matrix/client; empty means not announced.
	PublicBaseURL string
	// WellKnownServer is announced as m.server by /.well-known/matrix/server; empty means not served.
	WellKnownServer string
	MaxBodyBytes    int64
}

// API serves the Client-Server API.
type API struct {
	cfg Config
	log *logrus.Entry
}

// New returns the client API.
func New(cfg Config, log *logrus.Entry) *API {
	return &API{cfg: cfg, log: log.WithField("component", "clientapi")}
}

// Handler returns the HTTP handler for the client listener.
func (a *API) Handler() http.Handler {
	r := mux.NewRouter()
	r.UseEncodedPath() // ids such as room aliases contain '#' and ':' that must survive routing
	r.NotFoundHandler = mxhttp.Handle(func(*http.Request) (mxhttp.Response, error) {
		return mxhttp.Response{}, mxhttp.Unrecognized("unrecognized request")
	})
	r.MethodNotAllowedHandler = mxhttp.Handle(func(*http.Request) (mxhttp.Response, error) {
		return mxhttp.Response{}, mxhttp.MethodNotAllowed()
	})

	r.Handle("/.well-known/matrix/client", mxhttp.Handle(a.wellKnownClient)).Methods(http.MethodGet)
	r.Handle("/.well-known/matrix/server", mxhttp.Handle(a.wellKnownServer)).Methods(http.MethodGet)
	r.Handle("/_matrix/client/versions", mxhttp.Handle(a.versions)).Methods(http.MethodGet)

	return mxhttp.Middleware(a.log, a.cfg.MaxBodyBytes)(cors(r))
}

// cors adds the headers the spec recommends to every response and answers every OPTIONS request
// without running the endpoint's logic, as the spec requires.
func cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "X-Requested-With, Content-Type, Authorization")
		if r.Method == http.MethodOptions {
			mxhttp.WriteJSON(w, http.StatusOK, struct{}{})
			return
		}
		next.ServeHTTP(w, r)
	})
}
