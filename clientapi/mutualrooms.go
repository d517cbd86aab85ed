package clientapi

import (
	"encoding/base64"
	"net/http"

	"myelin/mxhttp"
	"myelin/roomserver/event"
	"myelin/storage"
)

// GET /v1/mutual_rooms: the rooms where both the requester and another user are joined, in
// pages of room ids sorted by id. A page token is the last room id of the previous page,
// encoded: it never expires, and a room joined since is found when its id sorts later.

const mutualRoomsPage = 100

func (a *API) mutualRooms(r *http.Request, who Requester) (mxhttp.Response, error) {
	q := r.URL.Query()
	other := q.Get("user_id")
	if other == "" {
		return mxhttp.Response{}, mxhttp.InvalidParam("user_id is required")
	}
	uid, err := event.ParseUserID(other)
	if err != nil || !uid.Compliant() {
		return mxhttp.Response{}, mxhttp.InvalidParam("%q is not a valid user id", other)
	}
	if other == who.UserID {
		return mxhttp.Response{}, mxhttp.InvalidParam("user_id is your own user id")
	}
	after := ""
	if from := q.Get("from"); from != "" {
		b, err := base64.RawURLEncoding.DecodeString(from)
		if err != nil || len(b) == 0 || b[0] != '!' {
			return mxhttp.Response{}, mxhttp.InvalidParam("invalid from token")
		}
		after = string(b)
	}
	ctx := r.Context()
	rooms, err := storage.MutualRooms(ctx, a.db, who.UserID, other, after, mutualRoomsPage+1)
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	count, err := storage.CountMutualRooms(ctx, a.db, who.UserID, other)
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	out := map[string]any{"count": count}
	if len(rooms) > mutualRoomsPage {
		rooms = rooms[:mutualRoomsPage]
		out["next_batch"] = base64.RawURLEncoding.EncodeToString([]byte(rooms[len(rooms)-1]))
	}
	if rooms == nil {
		rooms = []string{}
	}
	out["joined"] = rooms
	return mxhttp.OK(out), nil
}
