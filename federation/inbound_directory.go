package federation

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/gorilla/mux"

	"myelin/mxhttp"
	"myelin/roomserver"
)

// DirectoryRooms is what the room directory and space hierarchy endpoints need from the room
// server.
type DirectoryRooms interface {
	PublicRooms(ctx context.Context, q roomserver.PublicRoomsQuery) (roomserver.PublicRoomsPage, error)
	RoomSummary(ctx context.Context, roomID string) (*roomserver.SpaceRoom, error)
	ServerPreviewer(server string) roomserver.Previewer
}

var _ DirectoryRooms = (*roomserver.Server)(nil)

// directoryRoutes registers GET/POST /publicRooms and GET /hierarchy/{roomID}. Without
// Config.Directory they stay unregistered (404 M_UNRECOGNIZED).
func (s *Server) directoryRoutes(r *mux.Router) {
	if s.cfg.Directory == nil {
		return
	}
	const v1 = "/_matrix/federation/v1"
	mxhttp.Route(r, v1+"/publicRooms").Handler(s.authed(s.getPublicRooms)).Methods(http.MethodGet)
	mxhttp.Route(r, v1+"/publicRooms").Handler(s.authed(s.postPublicRooms)).Methods(http.MethodPost)
	mxhttp.Route(r, v1+"/hierarchy/{roomID}").Handler(s.authed(s.roomScoped(s.hierarchy))).Methods(http.MethodGet)
}

// checkDirectoryShared refuses the room directory to other servers unless the operator chose
// to share it (directory.federate): a published room is meant to be found by this server's
// users, and a crawler listing every server's rooms learns who talks about what.
func (s *Server) checkDirectoryShared() error {
	if !s.cfg.FederateRoomDirectory {
		return mxhttp.Forbidden("this server does not share its room directory over federation")
	}
	return nil
}

// getPublicRooms is GET /publicRooms: limit (0 or absent: no limit beyond the server's
// maximum), since, include_all_networks, third_party_instance_id.
func (s *Server) getPublicRooms(r *http.Request) (mxhttp.Response, error) {
	if err := s.checkDirectoryShared(); err != nil {
		return mxhttp.Response{}, err
	}
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
	switch v := q.Get("include_all_networks"); v {
	case "", "false":
	case "true":
		req.IncludeAllNetworks = true
	default:
		return mxhttp.Response{}, mxhttp.InvalidParam("include_all_networks must be true or false")
	}
	req.ThirdPartyInstanceID = q.Get("third_party_instance_id")
	return s.publicRooms(r.Context(), req)
}

// postPublicRooms is POST /publicRooms, with the client API's filter.
func (s *Server) postPublicRooms(r *http.Request) (mxhttp.Response, error) {
	if err := s.checkDirectoryShared(); err != nil {
		return mxhttp.Response{}, err
	}
	var req roomserver.PublicRoomsRequest
	if err := mxhttp.ReadJSON(r, &req); err != nil {
		return mxhttp.Response{}, err
	}
	return s.publicRooms(r.Context(), req)
}

func (s *Server) publicRooms(ctx context.Context, req roomserver.PublicRoomsRequest) (mxhttp.Response, error) {
	q, third, err := req.Query()
	if err != nil {
		return mxhttp.Response{}, mxhttp.InvalidParam("%s", strings.TrimPrefix(err.Error(), roomserver.ErrInvalid.Error()+": ")).Because(err)
	}
	if third {
		return mxhttp.OK(roomserver.EmptyPublicRoomsPage()), nil
	}
	page, err := s.cfg.Directory.PublicRooms(ctx, q)
	if errors.Is(err, roomserver.ErrInvalid) {
		return mxhttp.Response{}, mxhttp.InvalidParam("unknown pagination token").Because(err)
	}
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	return mxhttp.OK(page), nil
}

// hierarchy is GET /hierarchy/{roomID}: the space and its children, without pagination or
// recursion (the asking server walks further itself). Children this server knows are
// summarised from its state; those the origin may not see are listed by id only; those it does
// not know are left out, for the origin to ask their own servers.
func (s *Server) hierarchy(r *http.Request) (mxhttp.Response, error) {
	roomID, err := pathVar(r, "roomID")
	if err != nil {
		return mxhttp.Response{}, err
	}
	var suggestedOnly bool
	switch v := r.URL.Query().Get("suggested_only"); v {
	case "", "false":
	case "true":
		suggestedOnly = true
	default:
		return mxhttp.Response{}, mxhttp.InvalidParam("suggested_only must be true or false")
	}
	ctx := r.Context()
	dir := s.cfg.Directory
	viewer := dir.ServerPreviewer(OriginFromContext(ctx))
	room, err := dir.RoomSummary(ctx, roomID)
	if errors.Is(err, roomserver.ErrNotFound) {
		return mxhttp.Response{}, mxhttp.NotFound("room %s is not known here", roomID)
	}
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	if _, ok, err := roomserver.MayPreview(ctx, &room.RoomSummary, viewer); err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	} else if !ok {
		// The same answer as for an unknown room: whether it exists is not the origin's to learn.
		return mxhttp.Response{}, mxhttp.NotFound("room %s is not known here", roomID)
	}
	if suggestedOnly {
		room.ChildrenState = roomserver.SuggestedChildren(room.ChildrenState)
	}
	out := roomserver.SpaceHierarchy{Room: *room, Children: []roomserver.SpaceRoom{}, InaccessibleChildren: []string{}}
	for _, c := range room.ChildrenState {
		child, err := dir.RoomSummary(ctx, c.StateKey)
		if errors.Is(err, roomserver.ErrNotFound) {
			continue
		}
		if err != nil {
			return mxhttp.Response{}, mxhttp.Internal(err)
		}
		_, ok, err := roomserver.MayPreview(ctx, &child.RoomSummary, viewer)
		if err != nil {
			return mxhttp.Response{}, mxhttp.Internal(err)
		}
		if !ok {
			out.InaccessibleChildren = append(out.InaccessibleChildren, c.StateKey)
			continue
		}
		if suggestedOnly {
			child.ChildrenState = roomserver.SuggestedChildren(child.ChildrenState)
		}
		out.Children = append(out.Children, *child)
	}
	return mxhttp.OK(out), nil
}
