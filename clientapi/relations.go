package clientapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/gorilla/mux"

	"myelin/mxhttp"
	"myelin/roomserver/event"
	"myelin/storage"
)

// The relations API (/relations, "Relationships API") and the threads list (/threads).
//
// Both page in the room's topological order with /messages' tokens (tokens.go): a from or to
// token of /messages or /sync works here and the other way round. A page is read in batches
// from the relations index, each batch checked against history visibility the way /messages
// checks its pages, until the page is full or a bounded number of batches was read.

// Limits of the two endpoints: the spec has the server pick a default and a maximum.
const (
	defaultRelationsLimit = 20
	maxRelationsLimit     = 100
	defaultThreadsLimit   = 20
	maxThreadsLimit       = 100
	// relationsRecursionDepth is how deep recurse=true follows relations: the spec asks for
	// at least 3 levels.
	relationsRecursionDepth = 3
)

// relationRoutes registers the v1 endpoints of relations and threads.
func (a *API) relationRoutes(r *mux.Router) {
	handle := func(path string, h authedFunc) {
		mxhttp.Route(r, "/_matrix/client/v1"+path).Handler(mxhttp.Handle(a.authed(h))).Methods(http.MethodGet)
	}
	handle("/rooms/{roomId}/relations/{eventId}", a.relations)
	handle("/rooms/{roomId}/relations/{eventId}/{relType}", a.relations)
	handle("/rooms/{roomId}/relations/{eventId}/{relType}/{eventType}", a.relations)
	handle("/rooms/{roomId}/threads", a.threads)
}

// relationsRequest is a parsed /relations request.
type relationsRequest struct {
	roomID, eventID    string
	relType, eventType string
	from, to           *RoomToken
	limit              int
	backwards          bool
	recurse            *bool
}

func parseRelationsRequest(r *http.Request) (relationsRequest, error) {
	var req relationsRequest
	roomID, err := pathRoomID(r)
	if err != nil {
		return req, err
	}
	req.roomID = roomID
	vars := mux.Vars(r)
	for name, dst := range map[string]*string{"eventId": &req.eventID, "relType": &req.relType, "eventType": &req.eventType} {
		if _, ok := vars[name]; !ok {
			continue
		}
		if *dst, err = roomPathVar(r, name); err != nil {
			return req, err
		}
	}
	q := r.URL.Query()
	for name, dst := range map[string]**RoomToken{"from": &req.from, "to": &req.to} {
		if s := q.Get(name); s != "" {
			t, err := pageToken(s)
			if err != nil {
				return req, err
			}
			*dst = &t
		}
	}
	switch q.Get("dir") {
	case "", "b":
		req.backwards = true
	case "f":
	default:
		return req, mxhttp.InvalidParam("dir must be b or f")
	}
	if req.limit, err = limitParam(r, defaultRelationsLimit); err != nil {
		return req, err
	}
	req.limit = min(req.limit, maxRelationsLimit)
	switch q.Get("recurse") {
	case "":
	case "true":
		req.recurse = new(true)
	case "false":
		req.recurse = new(false)
	default:
		return req, mxhttp.InvalidParam("recurse must be true or false")
	}
	return req, nil
}

// relations is GET /v1/rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]. A parent
// the user may not see, in a room they may not read, is answered as one that does not exist,
// which is the one error the spec gives.
func (a *API) relations(r *http.Request, who Requester) (mxhttp.Response, error) {
	req, err := parseRelationsRequest(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	ctx := r.Context()
	room, v, acc, err := a.roomForReading(ctx, who, req.roomID)
	if err != nil {
		return mxhttp.Response{}, asNotFound(err)
	}
	if _, err := a.visibleEvent(ctx, who, req.roomID, req.eventID); err != nil {
		return mxhttp.Response{}, err
	}
	ceiling, err := a.readLimit(ctx, acc)
	if err != nil {
		return mxhttp.Response{}, err
	}
	q := storage.RelationQuery{
		Room: room.NID, Parent: req.eventID, RelType: req.relType, ChildType: req.eventType,
		Depth: 1, MaxStream: ceiling, Backwards: req.backwards,
		// The window (From, To]: the whole room until the tokens narrow it.
		From: storage.TopoPos{}, To: storage.TopoEnd,
	}
	if req.recurse != nil && *req.recurse {
		q.Depth = relationsRecursionDepth
	}
	evs, next, more, err := a.pageRelations(ctx, who, v, q, req)
	if err != nil {
		return mxhttp.Response{}, err
	}
	chunk, err := a.clientEvents(ctx, who, evs)
	if err != nil {
		return mxhttp.Response{}, err
	}
	resp := map[string]any{"chunk": chunk}
	if more {
		resp["next_batch"] = next.String()
	}
	if req.from != nil {
		resp["prev_batch"] = req.from.String()
	}
	if req.recurse != nil {
		resp["recursion_depth"] = q.Depth
	}
	return mxhttp.OK(resp), nil
}

// pageRelations reads up to req.limit visible children in the window of q, starting at
// req.from and stopping at req.to, and returns them with the token that continues after them
// and whether there may be more.
func (a *API) pageRelations(ctx context.Context, who Requester, v event.RoomVersion, q storage.RelationQuery, req relationsRequest) ([]*event.Event, RoomToken, bool, error) {
	// In the window (lo, hi], backwards reads down from hi, forwards up from lo.
	start := q.From
	if req.backwards {
		start = q.To
	}
	cursor := RoomToken{Topological: start.Topological, Depth: start.Depth, Stream: start.Stream}
	if req.from != nil {
		cursor = *req.from
	}
	if req.to != nil {
		if req.backwards {
			q.From = req.to.pos()
		} else {
			q.To = req.to.pos()
		}
	}
	var out []*event.Event
	if req.limit == 0 {
		return out, cursor, false, nil
	}
	batch := max(req.limit, 20)
	q.Limit = batch
	for range maxScannedBatches {
		if req.backwards {
			q.To = cursor.pos()
		} else {
			q.From = cursor.pos()
		}
		rels, err := storage.RelationPage(ctx, a.db, q)
		if err != nil {
			return nil, cursor, false, mxhttp.Internal(err)
		}
		if len(rels) == 0 {
			return out, cursor, false, nil
		}
		nids := make([]storage.EventNID, len(rels))
		for i, rel := range rels {
			nids[i] = rel.ChildNID
		}
		recs, err := storage.EventsByNID(ctx, a.db, nids)
		if err != nil {
			return nil, cursor, false, mxhttp.Internal(err)
		}
		byNID := map[storage.EventNID]*event.Event{}
		var parsed []*event.Event
		for _, rec := range recs {
			if rec.JSON == nil {
				continue
			}
			ev, err := event.Parse(rec.JSON, v)
			if err != nil {
				return nil, cursor, false, mxhttp.Internal(err)
			}
			byNID[rec.NID] = ev
			parsed = append(parsed, ev)
		}
		visible, err := visibleEvents(ctx, a.cfg.Rooms, who.UserID, parsed)
		if err != nil {
			return nil, cursor, false, roomError(err)
		}
		shown := make(map[string]bool, len(visible))
		for _, ev := range visible {
			shown[ev.ID()] = true
		}
		for _, rel := range rels {
			ev := byNID[rel.ChildNID]
			if ev == nil || !shown[ev.ID()] {
				continue
			}
			out = append(out, ev)
			if len(out) == req.limit {
				return out, relationTokenAfter(rel, req.backwards), true, nil
			}
		}
		cursor = relationTokenAfter(rels[len(rels)-1], req.backwards)
		if len(rels) < batch {
			return out, cursor, false, nil
		}
	}
	return out, cursor, true, nil
}

// relationTokenAfter is the position past a child in the direction of travel, as tokenAfter
// is for /messages.
func relationTokenAfter(rel storage.Relation, backwards bool) RoomToken {
	return tokenAfter(storage.EventRecord{Depth: rel.Depth, StreamPos: rel.StreamPos}, backwards)
}

// threads is GET /v1/rooms/{roomId}/threads: the thread roots of a room the user may see, the
// most recently active first, with their aggregations. A room the user may not read, or that
// does not exist, is 403, as the spec says.
func (a *API) threads(r *http.Request, who Requester) (mxhttp.Response, error) {
	roomID, err := pathRoomID(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	q := r.URL.Query()
	participant := ""
	switch q.Get("include") {
	case "", "all":
	case "participated":
		participant = who.UserID
	default:
		return mxhttp.Response{}, mxhttp.InvalidParam("include must be all or participated")
	}
	limit := defaultThreadsLimit
	if s := q.Get("limit"); s != "" {
		n, err := limitParam(r, defaultThreadsLimit)
		if err != nil || n <= 0 {
			return mxhttp.Response{}, mxhttp.InvalidParam("limit must be an integer greater than zero")
		}
		limit = min(n, maxThreadsLimit)
	}
	before := storage.TopoEnd
	if s := q.Get("from"); s != "" {
		t, err := pageToken(s)
		if err != nil {
			return mxhttp.Response{}, err
		}
		before = t.pos()
	}
	ctx := r.Context()
	room, v, _, err := a.roomForReading(ctx, who, roomID)
	if err != nil {
		var mx *mxhttp.Error
		if errors.As(err, &mx) && mx.Status == http.StatusNotFound {
			return mxhttp.Response{}, mxhttp.Forbidden("you are not allowed to view this room")
		}
		return mxhttp.Response{}, err
	}
	var roots []*event.Event
	more := false
	next := before
	batch := max(limit, 20)
pages:
	for range maxScannedBatches {
		threads, err := storage.ThreadRoots(ctx, a.db, room.NID, participant, next, batch)
		if err != nil {
			return mxhttp.Response{}, mxhttp.Internal(err)
		}
		ids := make([]string, len(threads))
		for i, t := range threads {
			ids[i] = t.RootID
		}
		recs, err := storage.EventsByID(ctx, a.db, ids)
		if err != nil {
			return mxhttp.Response{}, mxhttp.Internal(err)
		}
		byID := map[string]*event.Event{}
		var parsed []*event.Event
		for _, rec := range recs {
			if rec.JSON == nil || rec.Room != room.NID {
				continue
			}
			ev, err := event.Parse(rec.JSON, v)
			if err != nil {
				return mxhttp.Response{}, mxhttp.Internal(err)
			}
			byID[ev.ID()] = ev
			parsed = append(parsed, ev)
		}
		visible, err := visibleEvents(ctx, a.cfg.Rooms, who.UserID, parsed)
		if err != nil {
			return mxhttp.Response{}, roomError(err)
		}
		shown := map[string]bool{}
		for _, ev := range visible {
			shown[ev.ID()] = true
		}
		for _, t := range threads {
			// Past this thread: threads whose latest reply is before its latest reply.
			next = storage.TopoPos{Topological: true, Depth: t.LatestDepth, Stream: t.LatestStream - 1}
			if ev := byID[t.RootID]; ev != nil && shown[t.RootID] {
				roots = append(roots, ev)
				if len(roots) == limit {
					more = true
					break pages
				}
			}
		}
		if more = len(threads) == batch; !more {
			break
		}
	}
	chunk, err := a.clientEvents(ctx, who, roots)
	if err != nil {
		return mxhttp.Response{}, err
	}
	resp := map[string]any{"chunk": chunk}
	if more {
		resp["next_batch"] = RoomToken{Topological: next.Topological, Depth: next.Depth, Stream: next.Stream}.String()
	}
	return mxhttp.OK(resp), nil
}

// asNotFound turns a refusal to read a room into the 404 of an endpoint whose only documented
// error is M_NOT_FOUND: not being allowed to see an event is not told apart from its absence.
func asNotFound(err error) error {
	var mx *mxhttp.Error
	if errors.As(err, &mx) && mx.Status == http.StatusForbidden {
		return mxhttp.NotFound("event not found").Because(err)
	}
	return err
}
