// Package federation is the Server-Server API: the inbound server, the outbound client, server
// discovery and the per-destination sender queues.
package federation

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/gorilla/mux"
	"github.com/sirupsen/logrus"

	"myelin/keys"
	"myelin/mxhttp"
	"myelin/storage"
)

// keyValidity is how long other servers may cache our key document. Short enough that a key
// rotation propagates within a day, long enough that notaries are not asked constantly.
const keyValidity = 24 * time.Hour

// Version is reported by /_matrix/federation/v1/version.
var Version = "dev"

// Config is what the federation server needs from the server configuration.
type Config struct {
	ServerName   string
	SigningKey   keys.SigningKey
	MaxBodyBytes int64
	// OldVerifyKeys are keys this server used to sign with, by key id, kept so that other servers
	// can still verify events we signed with them.
	OldVerifyKeys map[string]OldVerifyKey
	// KeyRing finds other servers' keys, to verify requests and to answer as a notary.
	KeyRing *KeyRing
	// Queries answer GET /_matrix/federation/v1/query/{queryType} by query type ("profile",
	// "directory"); an unknown type is 404 M_UNRECOGNIZED.
	Queries map[string]mxhttp.HandlerFunc

	// The room endpoints (inbound_*.go). Rooms nil: they answer 404 M_UNRECOGNIZED.
	Rooms RoomServer
	// DB keeps what the room endpoints remember (answers to transactions, for retries).
	DB *storage.DB
	// Remote fetches what a transaction lacks (missing events) from other servers.
	Remote Requester
	// Forwarder passes events accepted through send_join, send_leave and send_knock on to the
	// other servers of the room; nil: not forwarded.
	Forwarder EventForwarder
	// Contacted is told of every request whose signature verified, with its origin: the
	// Sender's Wake, so that a queue in back-off towards that server is retried at once.
	Contacted func(origin string)
	// EDUHandlers take the EDUs of transactions by edu_type; other types are ignored.
	EDUHandlers map[string]EDUHandler
	// UserKeys answers /user/devices, /user/keys/query and /user/keys/claim (inbound_user.go);
	// nil: those answer M_UNRECOGNIZED.
	UserKeys UserKeyStore
	// Directory answers /publicRooms and /hierarchy (inbound_directory.go); nil: those answer
	// M_UNRECOGNIZED. FederateRoomDirectory (directory.federate) lets other servers list the
	// published rooms; off, /publicRooms answers 403.
	Directory             DirectoryRooms
	FederateRoomDirectory bool
}

// OldVerifyKey is a retired signing key's public half and when it stopped being used.
type OldVerifyKey struct {
	Key       string `json:"key"`
	ExpiredTS int64  `json:"expired_ts"`
}

// Server serves the Server-Server API.
type Server struct {
	cfg Config
	log *logrus.Entry
	now func() time.Time

	inbound inboundState
}

// NewServer returns the federation server.
func NewServer(cfg Config, log *logrus.Entry) *Server {
	return &Server{cfg: cfg, log: log.WithField("component", "federation"), now: time.Now}
}

// Handler returns the HTTP handler for the federation listener.
func (s *Server) Handler() http.Handler {
	r := mux.NewRouter()
	r.UseEncodedPath()
	r.NotFoundHandler = mxhttp.Handle(func(*http.Request) (mxhttp.Response, error) {
		return mxhttp.Response{}, mxhttp.Unrecognized("unrecognized request")
	})
	r.MethodNotAllowedHandler = mxhttp.Handle(func(*http.Request) (mxhttp.Response, error) {
		return mxhttp.Response{}, mxhttp.MethodNotAllowed()
	})
	mxhttp.Route(r, "/_matrix/key/v2/server").Handler(mxhttp.Handle(s.serverKeys)).Methods(http.MethodGet)
	// The key id path segment is deprecated; servers return all keys regardless.
	mxhttp.Route(r, "/_matrix/key/v2/server/{keyID}").Handler(mxhttp.Handle(s.serverKeys)).Methods(http.MethodGet)
	mxhttp.Route(r, "/_matrix/key/v2/query/{serverName}").Handler(mxhttp.Handle(s.queryKeysOne)).Methods(http.MethodGet)
	mxhttp.Route(r, "/_matrix/key/v2/query").Handler(mxhttp.Handle(s.queryKeys)).Methods(http.MethodPost)
	mxhttp.Route(r, "/_matrix/federation/v1/version").Handler(mxhttp.Handle(s.version)).Methods(http.MethodGet)
	// Called by third parties with a user's OpenID token, not by servers: not X-Matrix signed.
	mxhttp.Route(r, "/_matrix/federation/v1/openid/userinfo").Handler(mxhttp.Handle(s.openIDUserInfo)).Methods(http.MethodGet)
	// Called by identity servers, not by homeservers: not X-Matrix signed (inbound_thirdparty.go).
	mxhttp.Route(r, "/_matrix/federation/v1/3pid/onbind").Handler(mxhttp.Handle(s.onBind)).Methods(http.MethodPut)
	// Every other federation route is authenticated: wrap it in s.authed.
	mxhttp.Route(r, "/_matrix/federation/v1/query/{queryType}").Handler(s.authed(s.query)).Methods(http.MethodGet)
	// The room endpoints (inbound_*.go). Those with a room in the path that server ACLs
	// protect go through roomScoped.
	const v1, v2 = "/_matrix/federation/v1", "/_matrix/federation/v2"
	for _, rt := range []struct {
		method, path string
		h            mxhttp.HandlerFunc
	}{
		{http.MethodPut, v1 + "/send/{txnID}", s.sendTransaction},
		{http.MethodGet, v1 + "/event/{eventID}", s.getEvent},
		{http.MethodGet, v1 + "/state/{roomID}", s.roomScoped(s.getState)},
		{http.MethodGet, v1 + "/state_ids/{roomID}", s.roomScoped(s.getStateIDs)},
		{http.MethodGet, v1 + "/event_auth/{roomID}/{eventID}", s.roomScoped(s.getEventAuth)},
		{http.MethodGet, v1 + "/backfill/{roomID}", s.roomScoped(s.backfill)},
		{http.MethodPost, v1 + "/get_missing_events/{roomID}", s.roomScoped(s.getMissingEvents)},
		{http.MethodGet, v1 + "/timestamp_to_event/{roomID}", s.roomScoped(s.timestampToEvent)},
		{http.MethodGet, v1 + "/make_join/{roomID}/{userID}", s.roomScoped(s.makeMembership("join", "default1"))},
		{http.MethodPut, v1 + "/send_join/{roomID}/{eventID}", s.roomScoped(s.sendJoinV1)},
		{http.MethodPut, v2 + "/send_join/{roomID}/{eventID}", s.roomScoped(s.sendJoinV2)},
		{http.MethodGet, v1 + "/make_leave/{roomID}/{userID}", s.roomScoped(s.makeMembership("leave", ""))},
		{http.MethodPut, v1 + "/send_leave/{roomID}/{eventID}", s.roomScoped(s.sendLeaveV1)},
		{http.MethodPut, v2 + "/send_leave/{roomID}/{eventID}", s.roomScoped(s.sendLeaveV2)},
		{http.MethodGet, v1 + "/make_knock/{roomID}/{userID}", s.roomScoped(s.makeMembership("knock", "required"))},
		{http.MethodPut, v1 + "/send_knock/{roomID}/{eventID}", s.roomScoped(s.sendKnock)},
		{http.MethodPut, v1 + "/invite/{roomID}/{eventID}", s.roomScoped(s.inviteV1)},
		{http.MethodPut, v2 + "/invite/{roomID}/{eventID}", s.roomScoped(s.inviteV2)},
		{http.MethodPut, v1 + "/exchange_third_party_invite/{roomID}", s.roomScoped(s.exchangeThirdPartyInvite)},
	} {
		mxhttp.Route(r, rt.path).Handler(s.authed(rt.h)).Methods(rt.method)
	}
	s.userRoutes(r)
	s.directoryRoutes(r)
	return mxhttp.Middleware(s.log, s.cfg.MaxBodyBytes)(r)
}

// ServerKeys is the key document of server-server-api.md "Publishing Keys".
type ServerKeys struct {
	ServerName    string                  `json:"server_name"`
	VerifyKeys    map[string]VerifyKey    `json:"verify_keys"`
	OldVerifyKeys map[string]OldVerifyKey `json:"old_verify_keys"`
	ValidUntilTS  int64                   `json:"valid_until_ts"`
}

// VerifyKey is a current public signing key.
type VerifyKey struct {
	Key string `json:"key"`
}

// KeyDocument returns our signed key document, valid for keyValidity from now.
func (s *Server) KeyDocument() ([]byte, error) {
	old := s.cfg.OldVerifyKeys
	if old == nil {
		old = map[string]OldVerifyKey{}
	}
	doc := ServerKeys{
		ServerName:    s.cfg.ServerName,
		VerifyKeys:    map[string]VerifyKey{s.cfg.SigningKey.ID: {Key: keys.EncodeBase64(s.cfg.SigningKey.Public())}},
		OldVerifyKeys: old,
		ValidUntilTS:  s.now().Add(keyValidity).UnixMilli(),
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	return keys.SignJSON(s.cfg.ServerName, s.cfg.SigningKey.ID, s.cfg.SigningKey.Private, b)
}

func (s *Server) serverKeys(*http.Request) (mxhttp.Response, error) {
	doc, err := s.KeyDocument()
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	return mxhttp.OK(json.RawMessage(doc)), nil
}

func (s *Server) version(*http.Request) (mxhttp.Response, error) {
	return mxhttp.OK(map[string]any{"server": map[string]string{"name": "Myelin", "version": Version}}), nil
}
