package clientapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"sort"

	"myelin/mxhttp"
	"myelin/roomserver"
	"myelin/roomserver/event"
	"myelin/storage"
)

// Server-side search, POST /search (client-server API, "Server Side Search").
//
// The index (storage/search.go, filled by roomserver/search_index.go) is asked for candidates
// in the rooms the user has been in: joined rooms up to now, rooms they left up to their
// departure, never a room that is end-to-end encrypted now (as the spec says: its plaintext
// events, names and topics too). Candidates then pass, a batch at a time, through the room
// server's one history visibility check and the request's filter, until a page is full. Each
// word of the search term matches as a prefix of a word of the text; "rank" orders by BM25
// (SQLite) or ts_rank (PostgreSQL), "recent" by stream position.

const (
	defaultSearchLimit   = 10
	maxSearchLimit       = 100
	defaultContextLimit  = 5
	maxContextLimit      = 100
	searchBatch          = 100
	maxSearchBatches     = 20
	maxRankedCandidates  = 2000
	searchCategoryEvents = "room_events"
)

type searchRequest struct {
	SearchCategories *map[string]json.RawMessage `json:"search_categories"`
}

type roomEventsCriteria struct {
	SearchTerm   *string          `json:"search_term"`
	Keys         []string         `json:"keys"`
	Filter       *RoomEventFilter `json:"filter"`
	OrderBy      string           `json:"order_by"`
	EventContext *struct {
		BeforeLimit    *int `json:"before_limit"`
		AfterLimit     *int `json:"after_limit"`
		IncludeProfile bool `json:"include_profile"`
	} `json:"event_context"`
	IncludeState bool `json:"include_state"`
	Groupings    *struct {
		GroupBy []struct {
			Key string `json:"key"`
		} `json:"group_by"`
	} `json:"groupings"`
}

// searchToken is the opaque next_batch of /search: where the previous page ended in the
// order of the search, and, for the token of a group, the group it stays in.
type searchToken struct {
	Order  string  `json:"o"`
	Rank   float64 `json:"r,omitempty"`
	Pos    int64   `json:"p"`
	RoomID string  `json:"room,omitempty"`
	Sender string  `json:"sender,omitempty"`
}

func (t searchToken) String() string {
	b, _ := json.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(b)
}

func parseSearchToken(s string) (searchToken, error) {
	var t searchToken
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(b, &t) != nil || (t.Order != "rank" && t.Order != "recent") {
		return t, mxhttp.InvalidParam("invalid next_batch token")
	}
	return t, nil
}

// after reports whether a hit comes after the token's position in the order of the search.
func (t searchToken) after(h storage.SearchHit) bool {
	if t.Order == "recent" {
		return h.StreamPos < t.Pos
	}
	return h.Rank < t.Rank || (h.Rank == t.Rank && h.StreamPos < t.Pos)
}

// searchRoom is what the search knows of a room it may look into.
type searchRoom struct {
	storage.SearchableRoom
	version event.RoomVersion
	ceiling int64 // the last stream position the user may read
}

// search is POST /search.
func (a *API) search(r *http.Request, who Requester) (mxhttp.Response, error) {
	var req searchRequest
	if err := mxhttp.ReadJSON(r, &req); err != nil {
		return mxhttp.Response{}, err
	}
	if req.SearchCategories == nil {
		return mxhttp.Response{}, mxhttp.BadJSON("search_categories is required")
	}
	var crit *roomEventsCriteria
	for name, raw := range *req.SearchCategories {
		if name != searchCategoryEvents {
			return mxhttp.Response{}, mxhttp.InvalidParam("unknown search category %q", name)
		}
		crit = new(roomEventsCriteria)
		if err := mxhttp.DecodeJSON(raw, crit); err != nil {
			return mxhttp.Response{}, err
		}
	}
	out := map[string]any{}
	if crit != nil {
		var tok *searchToken
		if s := r.URL.Query().Get("next_batch"); s != "" {
			t, err := parseSearchToken(s)
			if err != nil {
				return mxhttp.Response{}, err
			}
			tok = &t
		}
		res, err := a.searchRoomEvents(r.Context(), who, crit, tok)
		if err != nil {
			return mxhttp.Response{}, err
		}
		out[searchCategoryEvents] = res
	}
	return mxhttp.OK(map[string]any{"search_categories": out}), nil
}

// checkCriteria validates the room_events criteria and fills in the defaults.
func checkCriteria(c *roomEventsCriteria, tok *searchToken) (limit, before, after int, err error) {
	if c.SearchTerm == nil {
		return 0, 0, 0, mxhttp.BadJSON("search_term is required")
	}
	for _, k := range c.Keys {
		switch k {
		case roomserver.SearchKeyBody, roomserver.SearchKeyName, roomserver.SearchKeyTopic:
		default:
			return 0, 0, 0, mxhttp.InvalidParam("unknown search key %q", k)
		}
	}
	switch c.OrderBy {
	case "":
		c.OrderBy = "rank"
	case "rank", "recent":
	default:
		return 0, 0, 0, mxhttp.InvalidParam("order_by must be rank or recent")
	}
	if tok != nil && tok.Order != c.OrderBy {
		return 0, 0, 0, mxhttp.InvalidParam("next_batch belongs to a search in another order")
	}
	if c.Groupings != nil {
		for _, g := range c.Groupings.GroupBy {
			if g.Key != "room_id" && g.Key != "sender" {
				return 0, 0, 0, mxhttp.InvalidParam("unknown group key %q", g.Key)
			}
		}
	}
	limit = defaultSearchLimit
	if c.Filter != nil {
		if err := c.Filter.EventFilter.validate(); err != nil {
			return 0, 0, 0, mxhttp.BadJSON("%v", err)
		}
		limit = min(c.Filter.LimitOr(limit), maxSearchLimit)
	}
	if e := c.EventContext; e != nil {
		before, after = defaultContextLimit, defaultContextLimit
		if e.BeforeLimit != nil {
			before = *e.BeforeLimit
		}
		if e.AfterLimit != nil {
			after = *e.AfterLimit
		}
		if before < 0 || after < 0 {
			return 0, 0, 0, mxhttp.InvalidParam("before_limit and after_limit must not be negative")
		}
		before, after = min(before, maxContextLimit), min(after, maxContextLimit)
	}
	return limit, before, after, nil
}

// searchRooms returns the rooms the search looks into: those the user has been in and not
// forgotten, that are not encrypted now, that the filter and the token let through.
func (a *API) searchRooms(ctx context.Context, who Requester, f *RoomEventFilter, tok *searchToken) (map[storage.RoomNID]*searchRoom, error) {
	all, err := storage.SearchableRooms(ctx, a.db, who.UserID)
	if err != nil {
		return nil, mxhttp.Internal(err)
	}
	forgotten, err := storage.ForgottenRooms(ctx, a.db, who.UserID)
	if err != nil {
		return nil, mxhttp.Internal(err)
	}
	now, err := storage.CurrentStreamPosition(ctx, a.db, "events")
	if err != nil {
		return nil, mxhttp.Internal(err)
	}
	rooms := map[storage.RoomNID]*searchRoom{}
	var nids []storage.RoomNID
	for _, sr := range all {
		if pos, ok := forgotten[sr.RoomID]; ok && sr.Membership != "join" && pos >= sr.MembershipPos {
			continue
		}
		if f != nil && !f.AllowsRoom(sr.RoomID) {
			continue
		}
		if tok != nil && tok.RoomID != "" && tok.RoomID != sr.RoomID {
			continue
		}
		v, err := event.Version(sr.Version)
		if err != nil {
			continue // a room of a version this server no longer reads is not searched
		}
		room := &searchRoom{SearchableRoom: sr, version: v, ceiling: now}
		if sr.Membership != "join" {
			room.ceiling = sr.MembershipPos
		}
		rooms[sr.Room] = room
		nids = append(nids, sr.Room)
	}
	encrypted, err := storage.RoomsWithState(ctx, a.db, nids, "m.room.encryption")
	if err != nil {
		return nil, mxhttp.Internal(err)
	}
	for nid := range encrypted {
		delete(rooms, nid)
	}
	return rooms, nil
}

// searchRoomEvents runs the room_events category.
func (a *API) searchRoomEvents(ctx context.Context, who Requester, c *roomEventsCriteria, tok *searchToken) (map[string]any, error) {
	limit, nBefore, nAfter, err := checkCriteria(c, tok)
	if err != nil {
		return nil, err
	}
	rooms, err := a.searchRooms(ctx, who, c.Filter, tok)
	if err != nil {
		return nil, err
	}
	// Events are indexed shortly after they are stored; a search sees all stored so far.
	if err := a.cfg.Rooms.SearchIndexed(ctx); err != nil {
		return nil, mxhttp.Internal(err)
	}
	q := storage.SearchQuery{Words: storage.SearchWords(*c.SearchTerm), Keys: c.Keys}
	for _, room := range rooms {
		until := int64(0)
		if room.Membership != "join" {
			until = room.ceiling
		}
		q.Rooms = append(q.Rooms, storage.SearchRoom{Room: room.Room, Until: until})
	}
	sort.Slice(q.Rooms, func(i, j int) bool { return q.Rooms[i].Room < q.Rooms[j].Room })
	count, err := storage.SearchCount(ctx, a.db, q)
	if err != nil {
		return nil, mxhttp.Internal(err)
	}
	found, next, err := a.searchPage(ctx, who, q, c, tok, rooms, limit)
	if err != nil {
		return nil, err
	}
	return a.searchResponse(ctx, who, c, tok, found, next, count, rooms, nBefore, nAfter)
}

// searchFound is a result: the event, its record and rank.
type searchFound struct {
	ev   *event.Event
	rec  storage.EventRecord
	hit  storage.SearchHit
	room *searchRoom
}

// searchPage reads candidates in batches, keeps those the user may see and the filter passes,
// and stops at limit results. next is the token of the following page, nil at the end.
func (a *API) searchPage(ctx context.Context, who Requester, q storage.SearchQuery, c *roomEventsCriteria,
	tok *searchToken, rooms map[storage.RoomNID]*searchRoom, limit int) ([]searchFound, *searchToken, error) {
	recent := c.OrderBy == "recent"
	var ranked []storage.SearchHit
	if !recent {
		q.Limit = maxRankedCandidates
		all, err := storage.Search(ctx, a.db, q, false)
		if err != nil {
			return nil, nil, mxhttp.Internal(err)
		}
		for _, h := range all {
			if tok == nil || tok.after(h) {
				ranked = append(ranked, h)
			}
		}
	} else if tok != nil {
		q.Before = tok.Pos
	}
	cursor := func(h storage.SearchHit) *searchToken {
		t := searchToken{Order: c.OrderBy, Rank: h.Rank, Pos: h.StreamPos}
		if tok != nil {
			t.RoomID, t.Sender = tok.RoomID, tok.Sender
		}
		return &t
	}
	var found []searchFound
	var resume *searchToken
	for range maxSearchBatches {
		var batch []storage.SearchHit
		if recent {
			q.Limit = searchBatch
			var err error
			if batch, err = storage.Search(ctx, a.db, q, true); err != nil {
				return nil, nil, mxhttp.Internal(err)
			}
		} else {
			batch = ranked[:min(searchBatch, len(ranked))]
			ranked = ranked[len(batch):]
		}
		if len(batch) == 0 {
			return found, nil, nil
		}
		kept, err := a.visibleHits(ctx, who, batch, rooms, c.Filter, tok)
		if err != nil {
			return nil, nil, err
		}
		for _, f := range kept {
			found = append(found, f)
			if len(found) == limit {
				return found, cursor(f.hit), nil
			}
		}
		last := batch[len(batch)-1]
		more := len(ranked) > 0
		if recent {
			q.Before = last.StreamPos
			more = len(batch) == searchBatch
		}
		if !more {
			return found, nil, nil
		}
		resume = cursor(last)
	}
	// The scan stopped before the page was full: the next page starts after the last
	// candidate examined.
	return found, resume, nil
}

// visibleHits loads a batch of candidates and keeps, in order, those the user may see, that
// the filter passes and that belong to the token's group.
func (a *API) visibleHits(ctx context.Context, who Requester, hits []storage.SearchHit, rooms map[storage.RoomNID]*searchRoom,
	f *RoomEventFilter, tok *searchToken) ([]searchFound, error) {
	nids := make([]storage.EventNID, len(hits))
	for i, h := range hits {
		nids[i] = h.Event
	}
	recs, err := storage.EventsByNID(ctx, a.db, nids)
	if err != nil {
		return nil, mxhttp.Internal(err)
	}
	byNID := make(map[storage.EventNID]storage.EventRecord, len(recs))
	for _, rec := range recs {
		byNID[rec.NID] = rec
	}
	var evs []*event.Event
	cands := map[string]searchFound{}
	for _, h := range hits {
		rec, ok := byNID[h.Event]
		room := rooms[h.Room]
		if !ok || rec.JSON == nil || room == nil {
			continue
		}
		ev, err := event.Parse(rec.JSON, room.version)
		if err != nil {
			return nil, mxhttp.Internal(err)
		}
		if f != nil && !f.Allows(ev) {
			continue
		}
		if tok != nil && tok.Sender != "" && ev.Sender() != tok.Sender {
			continue
		}
		evs = append(evs, ev)
		cands[ev.ID()] = searchFound{ev: ev, rec: rec, hit: h, room: room}
	}
	visible, err := visibleEvents(ctx, a.cfg.Rooms, who.UserID, evs)
	if err != nil {
		return nil, roomError(err)
	}
	out := make([]searchFound, 0, len(visible))
	for _, ev := range visible {
		out = append(out, cands[ev.ID()])
	}
	return out, nil
}
