package federation

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"myelin/roomserver"
)

// The outbound side of the room directory and space hierarchy: a client's /publicRooms with
// server=, and the summaries of rooms this server is not in (/hierarchy, /room_summary).

// maxRemoteRooms bounds the rooms kept from one remote answer, whatever the other server sends.
const maxRemoteRooms = 1000

// PublicRooms asks server for a page of its room directory: POST /publicRooms, or GET when
// the request has no filter and the server does not know POST.
func (o *Outbound) PublicRooms(ctx context.Context, server string, req roomserver.PublicRoomsRequest) (roomserver.PublicRoomsPage, error) {
	var page roomserver.PublicRoomsPage
	err := o.client.Do(ctx, server, http.MethodPost, "/_matrix/federation/v1/publicRooms", req, &page)
	if unrecognized(err) && req.Filter == nil {
		q := url.Values{}
		if req.Limit != nil {
			q.Set("limit", strconv.Itoa(*req.Limit))
		}
		if req.Since != "" {
			q.Set("since", req.Since)
		}
		if req.IncludeAllNetworks {
			q.Set("include_all_networks", "true")
		}
		if req.ThirdPartyInstanceID != "" {
			q.Set("third_party_instance_id", req.ThirdPartyInstanceID)
		}
		uri := "/_matrix/federation/v1/publicRooms"
		if len(q) > 0 {
			uri += "?" + q.Encode()
		}
		page = roomserver.PublicRoomsPage{}
		err = o.client.Do(ctx, server, http.MethodGet, uri, nil, &page)
	}
	var re *RemoteError
	if errors.As(err, &re) && re.Status == http.StatusBadRequest && re.Code != "M_UNRECOGNIZED" {
		return roomserver.PublicRoomsPage{}, fmt.Errorf("%w: %w", roomserver.ErrInvalid, err)
	}
	if err != nil {
		return roomserver.PublicRoomsPage{}, remoteError(err)
	}
	chunk := make([]roomserver.PublicRoom, 0, min(len(page.Chunk), maxRemoteRooms))
	for _, r := range page.Chunk {
		if strings.HasPrefix(r.RoomID, "!") && len(chunk) < maxRemoteRooms {
			chunk = append(chunk, r)
		}
	}
	page.Chunk = chunk
	return page, nil
}

// Hierarchy asks server for a space and its children: GET /hierarchy/{roomID}. The answer
// must be about the room asked for; children without a room id are dropped.
func (o *Outbound) Hierarchy(ctx context.Context, server, roomID string, suggestedOnly bool) (*roomserver.SpaceHierarchy, error) {
	uri := "/_matrix/federation/v1/hierarchy/" + url.PathEscape(roomID)
	if suggestedOnly {
		uri += "?suggested_only=true"
	}
	var h roomserver.SpaceHierarchy
	if err := o.client.Do(ctx, server, http.MethodGet, uri, nil, &h); err != nil {
		return nil, remoteError(err)
	}
	if h.Room.RoomID != roomID {
		return nil, fmt.Errorf("%s answered /hierarchy for %s about room %q", server, roomID, h.Room.RoomID)
	}
	children := make([]roomserver.SpaceRoom, 0, min(len(h.Children), maxRemoteRooms))
	for _, c := range h.Children {
		if strings.HasPrefix(c.RoomID, "!") && len(children) < maxRemoteRooms {
			children = append(children, c)
		}
	}
	h.Children = children
	if len(h.InaccessibleChildren) > maxRemoteRooms {
		h.InaccessibleChildren = h.InaccessibleChildren[:maxRemoteRooms]
	}
	if len(h.Room.ChildrenState) > maxRemoteRooms {
		h.Room.ChildrenState = h.Room.ChildrenState[:maxRemoteRooms]
	}
	return &h, nil
}
