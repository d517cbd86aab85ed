package clientapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"

	"myelin/mxhttp"
	"myelin/roomserver"
)

// GET /_matrix/client/v1/rooms/{roomId}/hierarchy walks a space depth first through its
// m.space.child events. A page is found by walking again from the root and skipping the rooms
// of earlier pages, so no walk is kept between requests; the token names the walk's parameters,
// which the spec forbids changing between pages.

const (
	defaultHierarchyLimit = 50
	maxHierarchyLimit     = 100
	// maxHierarchyDepth is the default and the most max_depth may ask for.
	maxHierarchyDepth = 20
	// maxHierarchyVisits bounds the rooms one request looks at, loops and huge trees included.
	maxHierarchyVisits = 1000
)

// hierarchyToken is the from/next_batch token: the root and parameters of the walk, and how
// many rooms earlier pages returned.
type hierarchyToken struct {
	Root          string `json:"r"`
	SuggestedOnly bool   `json:"s"`
	MaxDepth      int    `json:"d"`
	Offset        int    `json:"o"`
}

func (t hierarchyToken) String() string {
	b, _ := json.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(b)
}

func parseHierarchyToken(s string) (hierarchyToken, bool) {
	var t hierarchyToken
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(raw, &t) != nil || t.Offset < 0 {
		return hierarchyToken{}, false
	}
	return t, true
}

// queryBool reads an optional true/false query parameter.
func queryBool(r *http.Request, name string) (bool, error) {
	switch v := r.URL.Query().Get(name); v {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	}
	return false, mxhttp.InvalidParam("%s must be true or false", name)
}

// queryInt reads an optional integer query parameter of at least least.
func queryInt(r *http.Request, name string, def, least int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < least {
		return 0, mxhttp.InvalidParam("%s must be an integer of at least %d", name, least)
	}
	return n, nil
}

func (a *API) hierarchy(r *http.Request, who Requester) (mxhttp.Response, error) {
	roomID, err := pathRoomID(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	suggestedOnly, err := queryBool(r, "suggested_only")
	if err != nil {
		return mxhttp.Response{}, err
	}
	limit, err := queryInt(r, "limit", defaultHierarchyLimit, 1)
	if err != nil {
		return mxhttp.Response{}, err
	}
	maxDepth, err := queryInt(r, "max_depth", maxHierarchyDepth, 0)
	if err != nil {
		return mxhttp.Response{}, err
	}
	limit, maxDepth = min(limit, maxHierarchyLimit), min(maxDepth, maxHierarchyDepth)
	tok := hierarchyToken{Root: roomID, SuggestedOnly: suggestedOnly, MaxDepth: maxDepth}
	if from := r.URL.Query().Get("from"); from != "" {
		prev, ok := parseHierarchyToken(from)
		if !ok || prev.Root != roomID {
			return mxhttp.Response{}, mxhttp.InvalidParam("unknown pagination token")
		}
		if prev.SuggestedOnly != suggestedOnly || prev.MaxDepth != maxDepth {
			return mxhttp.Response{}, mxhttp.InvalidParam("suggested_only and max_depth cannot change on paginated requests")
		}
		tok.Offset = prev.Offset
	}
	w := &spaceWalk{a: a, rooms: a.cfg.Rooms.(directoryRooms), suggestedOnly: suggestedOnly, remote: map[string]*roomserver.SpaceRoom{}}
	w.viewer = w.rooms.UserPreviewer(who.UserID)
	rooms, more, err := w.walk(r.Context(), roomID, maxDepth, tok.Offset, limit)
	if err != nil {
		return mxhttp.Response{}, err
	}
	out := map[string]any{"rooms": rooms}
	if more {
		tok.Offset += len(rooms)
		out["next_batch"] = tok.String()
	}
	return mxhttp.OK(out), nil
}

// spaceWalk is one request's walk of a space.
type spaceWalk struct {
	a             *API
	rooms         directoryRooms
	viewer        roomserver.Previewer
	suggestedOnly bool
	// remote holds the summaries other servers gave in /hierarchy answers, so that a remote
	// space's children are not asked for one by one.
	remote map[string]*roomserver.SpaceRoom
}

type walkEntry struct {
	roomID string
	via    []string
	depth  int
}

// walk returns the limit rooms the viewer may see after the first skip, in depth-first order
// from root, and whether more follow. The root must be visible: 403 otherwise.
func (w *spaceWalk) walk(ctx context.Context, root string, maxDepth, skip, limit int) ([]roomserver.SpaceRoom, bool, error) {
	stack := []walkEntry{{roomID: root}}
	seen := map[string]bool{}
	out := []roomserver.SpaceRoom{}
	for visits := 0; len(stack) > 0 && visits < maxHierarchyVisits; visits++ {
		e := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[e.roomID] {
			continue
		}
		seen[e.roomID] = true
		sum, err := w.summary(ctx, e.roomID, e.via)
		if err != nil {
			return nil, false, err
		}
		visible := false
		if sum != nil {
			if _, visible, err = roomserver.MayPreview(ctx, &sum.RoomSummary, w.viewer); err != nil {
				return nil, false, mxhttp.Internal(err)
			}
		}
		if !visible {
			if e.depth == 0 {
				return nil, false, mxhttp.Forbidden("you may not view this room")
			}
			continue
		}
		if w.suggestedOnly {
			sum.ChildrenState = roomserver.SuggestedChildren(sum.ChildrenState)
		}
		switch {
		case skip > 0:
			skip--
		case len(out) == limit:
			return out, true, nil
		default:
			out = append(out, *sum)
		}
		if e.depth >= maxDepth {
			continue
		}
		// Push in reverse so that the first child in the spec's order is walked next.
		for _, c := range slices.Backward(sum.ChildrenState) {
			if p, ok := c.Parse(); ok && !seen[c.StateKey] {
				stack = append(stack, walkEntry{roomID: c.StateKey, via: p.Via, depth: e.depth + 1})
			}
		}
	}
	return out, false, nil
}

// summary returns a room's summary: from this server's state when one of its users is in the
// room, else from a server of via (or a remote answer already at hand), else from whatever
// state this server still holds; nil when none is to be had.
func (w *spaceWalk) summary(ctx context.Context, roomID string, via []string) (*roomserver.SpaceRoom, error) {
	in, err := w.rooms.ServerInRoom(ctx, roomID, w.a.cfg.ServerName)
	if err != nil && !errors.Is(err, roomserver.ErrNotFound) {
		return nil, mxhttp.Internal(err)
	}
	if in {
		return w.local(ctx, roomID)
	}
	if sum, ok := w.remote[roomID]; ok {
		return cloneSpaceRoom(sum), nil
	}
	if w.a.cfg.RemoteDirectory != nil {
		for _, server := range via {
			if server == w.a.cfg.ServerName {
				continue
			}
			h, err := w.a.cfg.RemoteDirectory.Hierarchy(ctx, server, roomID, w.suggestedOnly)
			if err != nil {
				mxhttp.Logger(ctx).WithError(err).WithField("destination", server).Debug("space hierarchy: remote room summary unavailable")
				continue
			}
			w.learn(h)
			if sum, ok := w.remote[roomID]; ok {
				return cloneSpaceRoom(sum), nil
			}
		}
	}
	return w.local(ctx, roomID)
}

func (w *spaceWalk) local(ctx context.Context, roomID string) (*roomserver.SpaceRoom, error) {
	sum, err := w.rooms.RoomSummary(ctx, roomID)
	if errors.Is(err, roomserver.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, mxhttp.Internal(err)
	}
	return sum, nil
}

// learn keeps the room and children of a remote /hierarchy answer. Only spaces keep their
// children, as for rooms read here.
func (w *spaceWalk) learn(h *roomserver.SpaceHierarchy) {
	keep := func(r roomserver.SpaceRoom) {
		if r.RoomType != roomserver.RoomTypeSpace || r.ChildrenState == nil {
			r.ChildrenState = []roomserver.SpaceChild{}
		}
		roomserver.SortSpaceChildren(r.ChildrenState)
		w.remote[r.RoomID] = &r
	}
	keep(h.Room)
	for _, c := range h.Children {
		if _, ok := w.remote[c.RoomID]; !ok {
			keep(c)
		}
	}
}

func cloneSpaceRoom(s *roomserver.SpaceRoom) *roomserver.SpaceRoom {
	c := *s
	c.ChildrenState = slices.Clone(s.ChildrenState)
	return &c
}
