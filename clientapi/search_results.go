package clientapi

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"

	"myelin/roomserver"
	"myelin/roomserver/auth"
	"myelin/roomserver/event"
	"myelin/storage"
)

// The shape of POST /search results (search.go): each result with its context, the groups,
// the rooms' state and the words to highlight.

// searchResponse formats the results with their context, groups, state and highlights.
func (a *API) searchResponse(ctx context.Context, who Requester, c *roomEventsCriteria, tok *searchToken,
	found []searchFound, next *searchToken, count int, rooms map[storage.RoomNID]*searchRoom, nBefore, nAfter int) (map[string]any, error) {
	evs := make([]*event.Event, len(found))
	for i, f := range found {
		evs[i] = f.ev
	}
	formatted, err := a.clientEvents(ctx, who, evs)
	if err != nil {
		return nil, err
	}
	results := make([]map[string]any, len(found))
	for i, f := range found {
		results[i] = map[string]any{"rank": f.hit.Rank, "result": formatted[i]}
		if c.EventContext != nil {
			cx, err := a.searchContext(ctx, who, f, nBefore, nAfter, c.EventContext.IncludeProfile)
			if err != nil {
				return nil, err
			}
			results[i]["context"] = cx
		}
	}
	out := map[string]any{
		"count":      count,
		"results":    results,
		"highlights": searchHighlights(storage.SearchWords(*c.SearchTerm), found),
	}
	if next != nil {
		out["next_batch"] = next.String()
	}
	if c.Groupings != nil && len(c.Groupings.GroupBy) > 0 {
		out["groups"] = searchGroups(c, found, next)
	}
	if c.IncludeState {
		state := map[string][]ClientEvent{}
		for _, f := range found {
			roomID := f.room.RoomID
			if _, ok := state[roomID]; ok {
				continue
			}
			acc, err := a.roomReadAccess(ctx, roomID, who.UserID)
			if err != nil {
				return nil, err
			}
			st, err := a.stateFor(ctx, roomID, acc)
			if err != nil {
				return nil, err
			}
			if state[roomID], err = a.formatEvents(ctx, st, FormatClient, a.now()); err != nil {
				return nil, err
			}
		}
		out["state"] = state
	}
	return out, nil
}

// searchGroups partitions the results by the requested keys. A group's next_batch continues
// the search within that group; it is given whenever the search has more results, since
// whether they fall in the group is only known by reading them.
func searchGroups(c *roomEventsCriteria, found []searchFound, next *searchToken) map[string]map[string]any {
	groups := map[string]map[string]any{}
	for _, g := range c.Groupings.GroupBy {
		byValue := map[string]any{}
		var order []string
		ids := map[string][]string{}
		for _, f := range found {
			v := f.ev.RoomID()
			if g.Key == "sender" {
				v = f.ev.Sender()
			}
			if _, ok := ids[v]; !ok {
				order = append(order, v)
			}
			ids[v] = append(ids[v], f.ev.ID())
		}
		for i, v := range order {
			grp := map[string]any{"results": ids[v], "order": i + 1}
			if next != nil {
				t := *next
				if g.Key == "room_id" {
					t.RoomID = v
				} else {
					t.Sender = v
				}
				grp["next_batch"] = t.String()
			}
			byValue[v] = grp
		}
		groups[g.Key] = byValue
	}
	return groups
}

// searchHighlights are the words to highlight: the words of the results that a word of the
// search term starts (prefix matching finds "searching" for "search"), and the terms.
func searchHighlights(terms []string, found []searchFound) []string {
	seen := map[string]bool{}
	out := []string{}
	add := func(w string) {
		if !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	for _, t := range terms {
		add(t)
	}
	for _, f := range found {
		var content map[string]json.RawMessage
		if json.Unmarshal(f.ev.Content(), &content) != nil {
			continue
		}
		for _, key := range []string{"body", "name", "topic"} {
			var s string
			if json.Unmarshal(content[key], &s) != nil {
				continue
			}
			for _, w := range storage.SearchWords(s) {
				if slices.ContainsFunc(terms, func(t string) bool { return strings.HasPrefix(w, t) }) {
					add(w)
				}
			}
		}
	}
	return out
}

// searchContext is the context of a result: the visible events before and after it in its
// room, pagination tokens around them, and optionally the senders' profiles at the event.
func (a *API) searchContext(ctx context.Context, who Requester, f searchFound, nBefore, nAfter int, withProfile bool) (map[string]any, error) {
	room := storage.Room{NID: f.room.Room, ID: f.room.RoomID, Version: f.room.Version}
	before, err := a.pageEvents(ctx, who, room, f.room.version, tokenAfter(f.rec, true), storage.TopoPos{}, f.room.ceiling, true, nBefore, nil)
	if err != nil {
		return nil, err
	}
	after, err := a.pageEvents(ctx, who, room, f.room.version, tokenAfter(f.rec, false), storage.TopoEnd, f.room.ceiling, false, nAfter, nil)
	if err != nil {
		return nil, err
	}
	evsBefore, err := a.clientEvents(ctx, who, before.events)
	if err != nil {
		return nil, err
	}
	evsAfter, err := a.clientEvents(ctx, who, after.events)
	if err != nil {
		return nil, err
	}
	out := map[string]any{
		"start":         before.next.String(),
		"end":           after.next.String(),
		"events_before": evsBefore,
		"events_after":  evsAfter,
	}
	if withProfile {
		senders := map[string]bool{f.ev.Sender(): true}
		for _, ev := range append(append([]*event.Event{}, before.events...), after.events...) {
			senders[ev.Sender()] = true
		}
		state, err := a.cfg.Rooms.StateAfter(ctx, f.ev.ID())
		if err != nil && !errors.Is(err, roomserver.ErrNotFound) {
			return nil, roomError(err)
		}
		profiles := map[string]map[string]string{}
		for _, ev := range state {
			if ev.Type() != auth.TypeMember || !senders[*ev.StateKey()] {
				continue
			}
			var c struct {
				DisplayName string `json:"displayname"`
				AvatarURL   string `json:"avatar_url"`
			}
			_ = json.Unmarshal(ev.Content(), &c)
			p := map[string]string{}
			if c.DisplayName != "" {
				p["displayname"] = c.DisplayName
			}
			if c.AvatarURL != "" {
				p["avatar_url"] = c.AvatarURL
			}
			profiles[*ev.StateKey()] = p
		}
		out["profile_info"] = profiles
	}
	return out, nil
}
