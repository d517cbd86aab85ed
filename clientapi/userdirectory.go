package clientapi

import (
	"net/http"
	"sort"
	"strings"

	"myelin/mxhttp"
	"myelin/roomserver/event"
	"myelin/storage"
)

// The user directory, POST /user_directory/search.
//
// Who can be found: the users who share a room with the searcher and the users joined to a
// public room (public join rule or world readable history now, or published in the room
// directory), never a deactivated account. That is the minimum the spec asks, and no more: a
// user in private rooms only is invisible to strangers. Names come from each member's current membership event of those
// rooms (remote users are only known that way; a local user's profile changes are sent to their
// rooms), read from the member_names table that the room server fills as events are stored,
// since SQL cannot read event bodies. A query over memberships joined to that table costs a
// few milliseconds for a room of thousands of members (storage/userdirectory_test.go), so
// there is no separate directory table to keep in step.
//
// Matching is case-insensitive: each word of the search term must start a word of the user's
// display name or of their user id's localpart (or of the whole user id when the term holds a
// ':'), so "ali smi" finds "Alice Smith" and "@alice.smith:example.org".

const (
	defaultDirectoryLimit = 10
	maxDirectoryLimit     = 100
	// maxDirectoryCandidates bounds the rows one search reads before matching them fully.
	maxDirectoryCandidates = 2000
)

type userDirectoryRequest struct {
	SearchTerm *string `json:"search_term"`
	Limit      *int    `json:"limit"`
}

// directoryUser is one user found, with what ranks them.
type directoryUser struct {
	UserID      string `json:"user_id"`
	DisplayName string `json:"display_name,omitempty"`
	AvatarURL   string `json:"avatar_url,omitempty"`
	score       int
	latest      storage.EventNID
}

func (a *API) searchUserDirectory(r *http.Request, who Requester) (mxhttp.Response, error) {
	var req userDirectoryRequest
	if err := mxhttp.ReadJSON(r, &req); err != nil {
		return mxhttp.Response{}, err
	}
	if req.SearchTerm == nil {
		return mxhttp.Response{}, mxhttp.BadJSON("search_term is required")
	}
	limit := defaultDirectoryLimit
	if req.Limit != nil {
		if *req.Limit < 0 {
			return mxhttp.Response{}, mxhttp.InvalidParam("limit must not be negative")
		}
		limit = min(*req.Limit, maxDirectoryLimit)
	}
	terms := storage.SearchWords(*req.SearchTerm)
	withServer := strings.Contains(*req.SearchTerm, ":")
	if len(terms) == 0 {
		return mxhttp.OK(map[string]any{"results": []directoryUser{}, "limited": false}), nil
	}
	ctx := r.Context()
	// SQL narrows by the longest word; Go applies the full match.
	first := terms[0]
	for _, t := range terms {
		if len(t) > len(first) {
			first = t
		}
	}
	cands, err := storage.DirectoryCandidates(ctx, a.db, who.UserID, first, first, maxDirectoryCandidates)
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	users := map[string]*directoryUser{}
	for _, c := range cands {
		score := directoryMatch(terms, c.UserID, c.DisplayName, withServer)
		if score == 0 {
			continue
		}
		if c.Shared {
			score++ // people one already shares a room with first
		}
		u := users[c.UserID]
		if u == nil {
			u = &directoryUser{UserID: c.UserID}
			users[c.UserID] = u
		}
		u.score = max(u.score, score)
		if c.Event > u.latest {
			u.latest, u.DisplayName, u.AvatarURL = c.Event, c.DisplayName, c.AvatarURL
		}
	}
	if err := a.directoryLocalUsers(r, users); err != nil {
		return mxhttp.Response{}, err
	}
	out := make([]directoryUser, 0, len(users))
	for _, u := range users {
		out = append(out, *u)
	}
	// Ordered by rank, then whether profile information is there, as the spec describes.
	sort.Slice(out, func(i, j int) bool {
		x, y := out[i], out[j]
		if x.score != y.score {
			return x.score > y.score
		}
		if (x.DisplayName != "") != (y.DisplayName != "") {
			return x.DisplayName != ""
		}
		if (x.AvatarURL != "") != (y.AvatarURL != "") {
			return x.AvatarURL != ""
		}
		return x.UserID < y.UserID
	})
	limited := len(out) > limit || len(cands) == maxDirectoryCandidates
	if len(out) > limit {
		out = out[:limit]
	}
	return mxhttp.OK(map[string]any{"results": out, "limited": limited}), nil
}

// directoryLocalUsers drops deactivated local users and shows the others' own profile, which
// is what their membership events copy.
func (a *API) directoryLocalUsers(r *http.Request, users map[string]*directoryUser) error {
	var local []string
	for id := range users {
		if uid, err := event.ParseUserID(id); err == nil && string(uid.Domain()) == a.cfg.ServerName {
			local = append(local, uid.Local())
		}
	}
	gone, err := storage.DeactivatedAmong(r.Context(), a.db, local)
	if err != nil {
		return mxhttp.Internal(err)
	}
	for _, lp := range local {
		id := "@" + lp + ":" + a.cfg.ServerName
		if gone[lp] {
			delete(users, id)
			continue
		}
		p, err := storage.GetProfile(r.Context(), a.db, lp)
		if err != nil {
			return mxhttp.Internal(err)
		}
		if p.DisplayName != "" || p.AvatarURL != "" {
			users[id].DisplayName, users[id].AvatarURL = p.DisplayName, p.AvatarURL
		}
	}
	return nil
}

// directoryMatch scores how well the terms match a user: 0 when some term starts none of the
// words, 3 when the terms are the whole display name or localpart, 2 when every term is a
// whole word, 1 otherwise.
func directoryMatch(terms []string, userID, displayName string, withServer bool) int {
	localpart, server, _ := strings.Cut(strings.TrimPrefix(userID, "@"), ":")
	nameWords := storage.SearchWords(displayName)
	idWords := storage.SearchWords(localpart)
	words := append(append([]string{strings.ToLower(localpart)}, nameWords...), idWords...)
	if withServer {
		words = append(words, storage.SearchWords(server)...)
	}
	whole := true
	for _, t := range terms {
		found, exact := false, false
		for _, w := range words {
			if strings.HasPrefix(w, t) {
				found = true
				exact = exact || w == t
			}
		}
		if !found {
			return 0
		}
		whole = whole && exact
	}
	joined := strings.Join(terms, " ")
	switch {
	case joined == strings.Join(nameWords, " ") || joined == strings.Join(idWords, " "):
		return 3
	case whole:
		return 2
	}
	return 1
}
