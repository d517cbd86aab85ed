package clientapi

import (
	"net/http"

	"myelin/mxhttp"
	"myelin/roomserver"
)

// roomSummaryResponse is a RoomSummary with the requesting user's membership.
type roomSummaryResponse struct {
	roomserver.RoomSummary
	Membership string `json:"membership,omitempty"`
}

// roomSummary is GET /_matrix/client/v1/room_summary/{roomIdOrAlias}. A room is summarised
// for whoever may preview it (roomserver.MayPreview: members, invitees, knockers; public,
// knockable or world-readable rooms; restricted rooms whose allowed rooms the user is in);
// for anyone else, as for a room that does not exist, the answer is 404, so that the endpoint
// does not tell whether a private room exists. A room this server is not in is asked of the
// servers of via (and of the alias) through the federation /hierarchy endpoint.
func (a *API) roomSummary(r *http.Request, who Requester) (mxhttp.Response, error) {
	roomID, via, err := a.resolveRoomIDOrAlias(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	ctx := r.Context()
	w := &spaceWalk{a: a, rooms: a.cfg.Rooms.(directoryRooms), remote: map[string]*roomserver.SpaceRoom{}}
	viewer := w.rooms.UserPreviewer(who.UserID)
	sum, err := w.summary(ctx, roomID, via)
	if err != nil {
		return mxhttp.Response{}, err
	}
	if sum == nil {
		return mxhttp.Response{}, mxhttp.NotFound("room not found")
	}
	membership, ok, err := roomserver.MayPreview(ctx, &sum.RoomSummary, viewer)
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	if !ok {
		return mxhttp.Response{}, mxhttp.NotFound("room not found")
	}
	out := roomSummaryResponse{RoomSummary: sum.RoomSummary}
	if who.UserID != "" {
		out.Membership = membership
		if membership == "" {
			out.Membership = "leave"
		}
	}
	if out.AllowedRoomIDs == nil && (out.JoinRule == "restricted" || out.JoinRule == "knock_restricted") {
		out.AllowedRoomIDs = []string{}
	}
	return mxhttp.OK(out), nil
}
