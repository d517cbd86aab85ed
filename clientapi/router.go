// Package clientapi is the Client-Server API front door: routing, CORS, and a handler file per area.
package clientapi

import (
	"net/http"
	"time"

	"github.com/gorilla/mux"
	"github.com/sirupsen/logrus"

	"myelin/clientapi/account"
	"myelin/keys/e2e"
	"myelin/mxhttp"
	"myelin/push"
	"myelin/storage"
)

// Config is what the client API needs from the server configuration.
type Config struct {
	ServerName string
	// PublicBaseURL is announced by /.well-known/matrix/client; empty means not announced.
	PublicBaseURL string
	// WellKnownServer is announced as m.server by /.well-known/matrix/server; empty means not served.
	WellKnownServer string
	MaxBodyBytes    int64

	// DB is the server's database.
	DB *storage.DB
	// RegistrationEnabled opens POST /register; RegistrationRequiresToken adds the
	// m.login.registration_token stage to it.
	RegistrationEnabled       bool
	RegistrationRequiresToken bool
	// ConsentPolicies, when any, add the m.login.terms stage to registration (consent.go).
	ConsentPolicies []ConsentPolicy
	// RateLimit is the token bucket for login, registration and, later, room actions.
	RateLimit RateLimitConfig
	// DefaultRoomVersion is announced in the m.room_versions capability.
	DefaultRoomVersion string
	// StoreLastSeenIP keeps the IP address each device was last seen from, shown in GET /devices.
	// Off by default: an address says where a person is.
	StoreLastSeenIP bool
	// RefreshableTokenLifetime is how long an access token issued with a refresh token lives;
	// zero means DefaultRefreshableTokenLifetime.
	RefreshableTokenLifetime time.Duration
	// Hooks let other components act when devices or accounts go away.
	Hooks Hooks
	// Rooms is the room server; nil leaves the room endpoints unregistered.
	Rooms Rooms
	// E2E is the end-to-end encryption key store. Nil: one over DB that knows no rooms, so that
	// /keys/changes reports only the user's own changes.
	E2E *e2e.Store
	// SyncNotifier wakes long-polling /sync requests; give the same one to the key store.
	// Nil: one of its own, which the room server feeds but the key store does not.
	SyncNotifier *Notifier

	// Ephemeral holds typing notifications and receipts (typing.go, receipts.go); give it the
	// SyncNotifier. Nil: one of its own, which tells no other server.
	Ephemeral *Ephemeral
	// ProfileRequiresSharedRoom shows a user's profile only to the user and to users who share
	// a room with them (profile.require_shared_room).
	ProfileRequiresSharedRoom bool
	// RemoteProfiles looks up profiles of other servers' users; nil: they are not found.
	RemoteProfiles RemoteProfiles
	// PresenceEnabled tracks and shares presence; off, the presence endpoints answer without
	// recording anything (presence.go).
	PresenceEnabled bool
	// TURN is the TURN server handed to clients for calls (voip.go); none configured: {}.
	TURN TURNConfig
	// Support is what /.well-known/matrix/support announces (nofeature.go).
	Support SupportInfo
	// DirectoryRequiresAuth asks for an access token on GET /publicRooms and GET /room_summary
	// (directory.require_auth).
	DirectoryRequiresAuth bool
	// RemoteDirectory reads other servers' room directories and room summaries (publicrooms.go,
	// hierarchy.go); nil: server= and rooms this server is not in are not found.
	RemoteDirectory RemoteDirectory
	// PushRules holds users' push rules (pushrules.go); give the notifier the same one, so that
	// a change reaches its cache. Nil: one over DB.
	PushRules *push.Store
	// Notifications is the notification worker (push/pusher), whose progress /sync waits for
	// and through which it reads counts (notifications.go); nil: counts are read as recorded.
	Notifications NotificationWorker
}

// API serves the Client-Server API.
type API struct {
	cfg      Config
	log      *logrus.Entry
	db       *storage.DB
	accounts *account.Accounts
	limiter  *RateLimiter
	now      func() time.Time
}

// New returns the client API.
func New(cfg Config, log *logrus.Entry) *API {
	if cfg.RefreshableTokenLifetime <= 0 {
		cfg.RefreshableTokenLifetime = DefaultRefreshableTokenLifetime
	}
	if cfg.DefaultRoomVersion == "" {
		cfg.DefaultRoomVersion = "12"
	}
	if cfg.SyncNotifier == nil {
		cfg.SyncNotifier = NewNotifier()
	}
	if cfg.Ephemeral == nil {
		var rooms EphemeralRooms
		if cfg.Rooms != nil {
			rooms = cfg.Rooms
		}
		cfg.Ephemeral = NewEphemeral(EphemeralConfig{ServerName: cfg.ServerName, DB: cfg.DB, Rooms: rooms, Notifier: cfg.SyncNotifier, Log: log})
	}
	if cfg.PushRules == nil {
		cfg.PushRules = push.NewStore(cfg.DB)
	}
	return &API{
		cfg:      cfg,
		log:      log.WithField("component", "clientapi"),
		db:       cfg.DB,
		accounts: account.New(cfg.DB, cfg.ServerName),
		limiter:  NewRateLimiter(cfg.RateLimit),
		now:      time.Now,
	}
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

	mxhttp.Route(r, "/.well-known/matrix/client").Handler(mxhttp.Handle(a.wellKnownClient)).Methods(http.MethodGet)
	mxhttp.Route(r, "/.well-known/matrix/server").Handler(mxhttp.Handle(a.wellKnownServer)).Methods(http.MethodGet)
	mxhttp.Route(r, "/_matrix/client/versions").Handler(mxhttp.Handle(a.versions)).Methods(http.MethodGet)
	a.accountRoutes(r)
	a.roomRoutes(r)
	a.e2eRoutes(r)
	a.syncRoutes(r)
	a.ephemeralRoutes(r)
	a.searchRoutes(r) // search_routes.go: /search, user directory, mutual rooms
	a.miscRoutes(r)
	a.pushRuleRoutes(r)
	a.notificationRoutes(r)

	return mxhttp.Middleware(a.log, a.cfg.MaxBodyBytes)(mxhttp.CORS(r))
}
