package clientapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"myelin/mxhttp"
	"myelin/roomserver"
	"myelin/roomserver/event"
)

// The published room directory (GET/POST /publicRooms), room summaries and space hierarchies
// read rooms through directoryRooms and other servers through RemoteDirectory.

// directoryRooms is what the directory, summary and hierarchy endpoints need from the room
// server beyond Rooms.
type directoryRooms interface {
	PublicRooms(ctx context.Context, q roomserver.PublicRoomsQuery) (roomserver.PublicRoomsPage, error)
	RoomSummary(ctx context.Context, roomID string) (*roomserver.SpaceRoom, error)
	UserPreviewer(userID string) roomserver.Previewer
	ServerInRoom(ctx context.Context, roomID, server string) (bool, error)
}

var _ directoryRooms = (*roomserver.Server)(nil)

// RemoteDirectory asks other servers for their room directory and for summaries of their
// rooms; *federation.Outbound is one.
type RemoteDirectory interface {
	PublicRooms(ctx context.Context, server string, req roomserver.PublicRoomsRequest) (roomserver.PublicRoomsPage, error)
	Hierarchy(ctx context.Context, server, roomID string, suggestedOnly bool) (*roomserver.SpaceHierarchy, error)
}

// defaultPublicRoomsLimit is the page size when a client asks for none.
const defaultPublicRoomsLimit = 100

// getPublicRooms is GET /publicRooms: limit, since and server in the query.
func (a *API) getPublicRooms(r *http.Request, who Requester) (mxhttp.Response, error) {
	q := r.URL.Query()
	var req roomserver.PublicRoomsRequest
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return mxhttp.Response{}, mxhttp.InvalidParam("limit must be an integer")
		}
		req.Limit = &n
	}
	req.Since = q.Get("since")
	return a.publicRooms(r.Context(), who, q.Get("server"), req)
}

// postPublicRooms is POST /publicRooms: the same with a filter and third-party networks.
func (a *API) postPublicRooms(r *http.Request, who Requester) (mxhttp.Response, error) {
	var req roomserver.PublicRoomsRequest
	if err := mxhttp.ReadJSON(r, &req); err != nil {
		return mxhttp.Response{}, err
	}
	return a.publicRooms(r.Context(), who, r.URL.Query().Get("server"), req)
}

func (a *API) publicRooms(ctx context.Context, who Requester, server string, req roomserver.PublicRoomsRequest) (mxhttp.Response, error) {
	q, third, err := req.Query()
	if err != nil {
		return mxhttp.Response{}, mxhttp.InvalidParam("%s", strings.TrimPrefix(err.Error(), roomserver.ErrInvalid.Error()+": ")).Because(err)
	}
	if server != "" && server != a.cfg.ServerName {
		return a.remotePublicRooms(ctx, who, server, req)
	}
	if third {
		return mxhttp.OK(roomserver.EmptyPublicRoomsPage()), nil
	}
	if q.Limit == 0 {
		q.Limit = defaultPublicRoomsLimit
	}
	page, err := a.cfg.Rooms.(directoryRooms).PublicRooms(ctx, q)
	if errors.Is(err, roomserver.ErrInvalid) {
		return mxhttp.Response{}, mxhttp.InvalidParam("unknown pagination token").Because(err)
	}
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	return mxhttp.OK(page), nil
}

// remotePublicRooms relays a directory request to another server. Only users of this server
// may make it ask: an anonymous client must not turn it into a relay for probing others.
func (a *API) remotePublicRooms(ctx context.Context, who Requester, server string, req roomserver.PublicRoomsRequest) (mxhttp.Response, error) {
	if _, err := event.ParseServerName(server); err != nil {
		return mxhttp.Response{}, mxhttp.InvalidParam("%q is not a server name", server)
	}
	if who.UserID == "" {
		return mxhttp.Response{}, mxhttp.MissingToken()
	}
	if a.cfg.RemoteDirectory == nil {
		return mxhttp.Response{}, mxhttp.NotFound("this server does not federate")
	}
	page, err := a.cfg.RemoteDirectory.PublicRooms(ctx, server, req)
	if err != nil {
		return mxhttp.Response{}, remoteDirectoryError(server, err)
	}
	if page.Chunk == nil {
		page.Chunk = []roomserver.PublicRoom{}
	}
	return mxhttp.OK(page), nil
}

// remoteDirectoryError maps another server's refusal or silence to the client: a refusal
// keeps its meaning, anything else is a bad gateway.
func remoteDirectoryError(server string, err error) error {
	switch {
	case errors.Is(err, roomserver.ErrNotAllowed):
		return mxhttp.Forbidden("%s refused to share its room directory", server).Because(err)
	case errors.Is(err, roomserver.ErrNotFound):
		return mxhttp.NotFound("%s has no room directory", server).Because(err)
	case errors.Is(err, roomserver.ErrInvalid):
		return mxhttp.InvalidParam("%s refused the request", server).Because(err)
	}
	return (&mxhttp.Error{Status: http.StatusBadGateway, Code: "M_UNKNOWN",
		Message: "could not fetch the room directory of " + server}).Because(err)
}
