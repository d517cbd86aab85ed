package federation

import (
	"net/http"
	"strconv"

	"myelin/mxhttp"
)

// backfill is GET /_matrix/federation/v1/backfill/{roomId}?v=&limit=: the events preceding
// the given ones, them included, that the asking server may see.
func (s *Server) backfill(r *http.Request) (mxhttp.Response, error) {
	roomID, err := s.pathRoom(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	q := r.URL.Query()
	from := q["v"]
	if len(from) == 0 {
		return mxhttp.Response{}, mxhttp.MissingParam("v is required")
	}
	if q.Get("limit") == "" {
		return mxhttp.Response{}, mxhttp.MissingParam("limit is required")
	}
	limit, err := strconv.Atoi(q.Get("limit"))
	if err != nil || limit < 0 {
		return mxhttp.Response{}, mxhttp.InvalidParam("limit must be a non-negative integer")
	}
	ctx := r.Context()
	evs, err := s.cfg.Rooms.Backfill(ctx, roomID, from, limit)
	if err != nil {
		return mxhttp.Response{}, roomError(err)
	}
	if evs, err = s.cfg.Rooms.ServerVisibleEvents(ctx, OriginFromContext(ctx), evs); err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	return mxhttp.OK(singlePDUTransaction{Origin: s.cfg.ServerName, OriginServerTS: s.now().UnixMilli(), PDUs: pdus(evs)}), nil
}

// getMissingEvents is POST /_matrix/federation/v1/get_missing_events/{roomId}.
func (s *Server) getMissingEvents(r *http.Request) (mxhttp.Response, error) {
	roomID, err := s.pathRoom(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	var req struct {
		Limit          *int     `json:"limit"`
		MinDepth       int64    `json:"min_depth"`
		EarliestEvents []string `json:"earliest_events"`
		LatestEvents   []string `json:"latest_events"`
	}
	if err := mxhttp.ReadJSON(r, &req); err != nil {
		return mxhttp.Response{}, err
	}
	if req.EarliestEvents == nil || req.LatestEvents == nil {
		return mxhttp.Response{}, mxhttp.BadJSON("earliest_events and latest_events are required")
	}
	limit := 10
	if req.Limit != nil {
		limit = *req.Limit
	}
	ctx := r.Context()
	evs, err := s.cfg.Rooms.MissingEvents(ctx, roomID, req.EarliestEvents, req.LatestEvents, limit, req.MinDepth)
	if err != nil {
		return mxhttp.Response{}, roomError(err)
	}
	if evs, err = s.cfg.Rooms.ServerVisibleEvents(ctx, OriginFromContext(ctx), evs); err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	return mxhttp.OK(map[string]any{"events": pdus(evs)}), nil
}
