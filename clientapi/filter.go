package clientapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/gorilla/mux"

	"myelin/mxhttp"
	"myelin/roomserver/event"
	"myelin/storage"
)

// Filters (client-server API, "Filtering"). A list that is absent (nil) places no restriction;
// a list that is present but empty matches nothing, as the spec words it ("If this list is
// absent then all ... are included").

// EventFilter is the spec's EventFilter.
type EventFilter struct {
	Limit      *int     `json:"limit,omitempty"`
	NotSenders []string `json:"not_senders,omitempty"`
	NotTypes   []string `json:"not_types,omitempty"`
	Senders    []string `json:"senders,omitempty"`
	Types      []string `json:"types,omitempty"`
}

// RoomEventFilter is the spec's RoomEventFilter; StateFilter has the same fields.
type RoomEventFilter struct {
	EventFilter
	UnreadThreadNotifications bool     `json:"unread_thread_notifications,omitempty"`
	LazyLoadMembers           bool     `json:"lazy_load_members,omitempty"`
	IncludeRedundantMembers   bool     `json:"include_redundant_members,omitempty"`
	NotRooms                  []string `json:"not_rooms,omitempty"`
	Rooms                     []string `json:"rooms,omitempty"`
	ContainsURL               *bool    `json:"contains_url,omitempty"`
	// RelatedByRelTypes and RelatedBySenders keep the events that have a child of one of
	// these rel_types, sent by one of these senders (relations_filter.go).
	RelatedByRelTypes []string `json:"related_by_rel_types,omitempty"`
	RelatedBySenders  []string `json:"related_by_senders,omitempty"`
}

// StateFilter is the spec's StateFilter.
type StateFilter = RoomEventFilter

// RoomFilter is the spec's RoomFilter.
type RoomFilter struct {
	NotRooms     []string        `json:"not_rooms,omitempty"`
	Rooms        []string        `json:"rooms,omitempty"`
	Ephemeral    RoomEventFilter `json:"ephemeral"`
	IncludeLeave bool            `json:"include_leave,omitempty"`
	State        StateFilter     `json:"state"`
	Timeline     RoomEventFilter `json:"timeline"`
	AccountData  RoomEventFilter `json:"account_data"`
}

// Filter is the spec's Filter, the body of POST /user/{userId}/filter.
type Filter struct {
	EventFields []string    `json:"event_fields,omitempty"`
	EventFormat string      `json:"event_format,omitempty"`
	Presence    EventFilter `json:"presence"`
	AccountData EventFilter `json:"account_data"`
	Room        RoomFilter  `json:"room"`
}

// Limits on timeline sizes: a client may ask for fewer events, never for an unbounded number.
const (
	DefaultTimelineLimit = 10
	MaxTimelineLimit     = 1000
)

// errInvalidFilter is wrapped by the errors of Validate.
var errInvalidFilter = errors.New("invalid filter")

// ParseFilter decodes and validates a filter. Bad JSON is M_NOT_JSON/M_BAD_JSON, a filter
// that breaks the spec's constraints M_BAD_JSON too, as Synapse answers.
func ParseFilter(raw []byte) (Filter, error) {
	var f Filter
	if err := mxhttp.DecodeJSON(raw, &f); err != nil {
		return Filter{}, err
	}
	if err := f.Validate(); err != nil {
		return Filter{}, mxhttp.BadJSON("%v", err).Because(err)
	}
	return f, nil
}

// Validate checks what the spec constrains beyond the JSON types.
func (f Filter) Validate() error {
	switch f.EventFormat {
	case "", "client", "federation":
	default:
		return wrapFilterErr("event_format must be client or federation")
	}
	for _, ef := range []EventFilter{f.Presence, f.AccountData, f.Room.Ephemeral.EventFilter,
		f.Room.State.EventFilter, f.Room.Timeline.EventFilter, f.Room.AccountData.EventFilter} {
		if err := ef.validate(); err != nil {
			return err
		}
	}
	for _, rooms := range [][]string{f.Room.Rooms, f.Room.NotRooms, f.Room.Ephemeral.Rooms, f.Room.Ephemeral.NotRooms,
		f.Room.State.Rooms, f.Room.State.NotRooms, f.Room.Timeline.Rooms, f.Room.Timeline.NotRooms,
		f.Room.AccountData.Rooms, f.Room.AccountData.NotRooms} {
		for _, id := range rooms {
			if !strings.HasPrefix(id, "!") {
				return wrapFilterErr("room ids in filters must start with '!'")
			}
		}
	}
	return nil
}

func (f EventFilter) validate() error {
	if f.Limit != nil && *f.Limit <= 0 {
		return wrapFilterErr("limit must be greater than 0")
	}
	for _, s := range append(append([]string(nil), f.Senders...), f.NotSenders...) {
		if !strings.HasPrefix(s, "@") {
			return wrapFilterErr("senders in filters must be user ids")
		}
	}
	return nil
}

func wrapFilterErr(msg string) error { return errors.New(errInvalidFilter.Error() + ": " + msg) }

// AllowsEvent reports whether an event of this type and sender passes.
func (f EventFilter) AllowsEvent(typ, sender string) bool {
	for _, s := range f.NotSenders {
		if s == sender {
			return false
		}
	}
	if f.Senders != nil && !slices.Contains(f.Senders, sender) {
		return false
	}
	for _, p := range f.NotTypes {
		if globMatch(p, typ) {
			return false
		}
	}
	if f.Types != nil {
		for _, p := range f.Types {
			if globMatch(p, typ) {
				return true
			}
		}
		return false
	}
	return true
}

// LimitOr returns the filter's limit, def when absent, capped at MaxTimelineLimit.
func (f EventFilter) LimitOr(def int) int {
	if f.Limit == nil {
		return def
	}
	return min(*f.Limit, MaxTimelineLimit)
}

// AllowsRoom reports whether the room passes rooms/not_rooms.
func (f RoomEventFilter) AllowsRoom(roomID string) bool {
	return roomAllowed(f.Rooms, f.NotRooms, roomID)
}

// Allows reports whether ev passes the filter, room included.
func (f RoomEventFilter) Allows(ev *event.Event) bool {
	if !f.AllowsRoom(ev.RoomID()) || !f.EventFilter.AllowsEvent(ev.Type(), ev.Sender()) {
		return false
	}
	if f.ContainsURL != nil && hasURL(ev.Content()) != *f.ContainsURL {
		return false
	}
	return true
}

// AllowsRoom reports whether the room passes the top-level rooms/not_rooms.
func (f RoomFilter) AllowsRoom(roomID string) bool {
	return roomAllowed(f.Rooms, f.NotRooms, roomID)
}

func roomAllowed(rooms, notRooms []string, roomID string) bool {
	if slices.Contains(notRooms, roomID) {
		return false
	}
	return rooms == nil || slices.Contains(rooms, roomID)
}

// hasURL: contains_url asks for events whose content has a "url" key.
func hasURL(content json.RawMessage) bool {
	if !bytes.Contains(content, []byte(`"url"`)) {
		return false
	}
	var c map[string]json.RawMessage
	if json.Unmarshal(content, &c) != nil {
		return false
	}
	_, ok := c["url"]
	return ok
}

// globMatch matches s against pattern, where '*' stands for any sequence of characters and
// every other character for itself.
func globMatch(pattern, s string) bool {
	if !strings.Contains(pattern, "*") {
		return pattern == s
	}
	parts := strings.Split(pattern, "*")
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, last)
}

// filterRoutes registers the filter endpoints.
func (a *API) filterRoutes(r *mux.Router) {
	handle := func(path string, h mxhttp.HandlerFunc, methods ...string) {
		mxhttp.Route(r, "/_matrix/client/v3"+path).Handler(mxhttp.Handle(h)).Methods(methods...)
	}
	handle("/user/{userId}/filter", a.authed(a.postFilter), http.MethodPost)
	handle("/user/{userId}/filter/{filterId}", a.authed(a.getFilter), http.MethodGet)
}

// ownUser checks that the {userId} of the path is the requester: filters and account data
// belong to their user alone.
func requireOwnUser(r *http.Request, who Requester) error {
	if userDataVar(r, "userId") != who.UserID {
		return mxhttp.Forbidden("cannot access data of another user")
	}
	return nil
}

func (a *API) postFilter(r *http.Request, who Requester) (mxhttp.Response, error) {
	if err := requireOwnUser(r, who); err != nil {
		return mxhttp.Response{}, err
	}
	var raw json.RawMessage
	if err := mxhttp.ReadJSON(r, &raw); err != nil {
		return mxhttp.Response{}, err
	}
	if _, err := ParseFilter(raw); err != nil {
		return mxhttp.Response{}, err
	}
	var id int64
	err := a.db.WithTx(r.Context(), func(tx *storage.Tx) error {
		var err error
		id, err = tx.InsertFilter(r.Context(), who.UserID, raw)
		return err
	})
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	return mxhttp.OK(map[string]string{"filter_id": strconv.FormatInt(id, 10)}), nil
}

func (a *API) getFilter(r *http.Request, who Requester) (mxhttp.Response, error) {
	if err := requireOwnUser(r, who); err != nil {
		return mxhttp.Response{}, err
	}
	raw, err := a.loadFilter(r, who.UserID, userDataVar(r, "filterId"))
	if err != nil {
		return mxhttp.Response{}, err
	}
	return mxhttp.OK(raw), nil
}

// loadFilter returns a stored filter of userID as uploaded; M_NOT_FOUND if there is none.
func (a *API) loadFilter(r *http.Request, userID, filterID string) (json.RawMessage, error) {
	id, err := strconv.ParseInt(filterID, 10, 64)
	if err != nil {
		return nil, mxhttp.NotFound("no such filter")
	}
	raw, err := storage.GetFilter(r.Context(), a.db, userID, id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, mxhttp.NotFound("no such filter")
	}
	if err != nil {
		return nil, mxhttp.Internal(err)
	}
	return raw, nil
}

// filterParam resolves the "filter" query parameter of /sync and /messages: inline JSON when
// it starts with '{', otherwise the id of a stored filter.
func (a *API) filterParam(r *http.Request, userID, param string) (Filter, error) {
	if param == "" {
		return Filter{}, nil
	}
	raw := []byte(param)
	if !strings.HasPrefix(strings.TrimSpace(param), "{") {
		var err error
		if raw, err = a.loadFilter(r, userID, param); err != nil {
			return Filter{}, err
		}
	}
	return ParseFilter(raw)
}

// userDataVar returns a path variable of the filter and account data routes, unescaped (the
// router keeps paths encoded).
func userDataVar(r *http.Request, name string) string {
	v := mux.Vars(r)[name]
	if u, err := url.PathUnescape(v); err == nil {
		return u
	}
	return v
}
