package roomserver

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"slices"

	"myelin/roomserver/auth"
	"myelin/roomserver/event"
	"myelin/storage"
)

// A room's summary is what a person deciding whether to join it is shown: the published room
// directory, /room_summary and the space hierarchy (client and federation) all describe rooms
// with it. The types carry the wire format of the spec's PublishedRoomsChunk, RoomSummary and
// space hierarchy rooms, so that a summary read from another server is the same value as one
// read here.

// PublicRoom is a PublishedRoomsChunk.
type PublicRoom struct {
	RoomID           string `json:"room_id"`
	Name             string `json:"name,omitempty"`
	Topic            string `json:"topic,omitempty"`
	AvatarURL        string `json:"avatar_url,omitempty"`
	CanonicalAlias   string `json:"canonical_alias,omitempty"`
	NumJoinedMembers int    `json:"num_joined_members"`
	WorldReadable    bool   `json:"world_readable"`
	GuestCanJoin     bool   `json:"guest_can_join"`
	JoinRule         string `json:"join_rule,omitempty"`
	RoomType         string `json:"room_type,omitempty"`
}

// RoomSummary is the spec's RoomSummary: a PublicRoom and what a joining client needs besides.
type RoomSummary struct {
	PublicRoom
	AllowedRoomIDs []string `json:"allowed_room_ids,omitempty"`
	Encryption     string   `json:"encryption,omitempty"`
	RoomVersion    string   `json:"room_version,omitempty"`
}

// SpaceRoom is a room of a space hierarchy: its summary and its m.space.child events.
type SpaceRoom struct {
	RoomSummary
	// ChildrenState are the room's m.space.child events with a via list, as stripped state
	// with origin_server_ts; empty unless the room is a space.
	ChildrenState []SpaceChild `json:"children_state"`
}

// SpaceChild is an m.space.child event as stripped state with its origin_server_ts.
type SpaceChild struct {
	Type           string          `json:"type"`
	StateKey       string          `json:"state_key"`
	Content        json.RawMessage `json:"content"`
	Sender         string          `json:"sender"`
	OriginServerTS int64           `json:"origin_server_ts"`
}

// SpaceChildContent is what an m.space.child event says about its child.
type SpaceChildContent struct {
	Via       []string `json:"via"`
	Order     string   `json:"order"`
	Suggested bool     `json:"suggested"`
}

// Parse reads the content of a child event; ok is false for a child that is not one (no via:
// the spec's way of removing a child).
func (c SpaceChild) Parse() (SpaceChildContent, bool) {
	var raw struct {
		Via       []string        `json:"via"`
		Order     json.RawMessage `json:"order"`
		Suggested json.RawMessage `json:"suggested"`
	}
	if json.Unmarshal(c.Content, &raw) != nil || len(raw.Via) == 0 {
		return SpaceChildContent{}, false
	}
	out := SpaceChildContent{Via: raw.Via, Suggested: string(raw.Suggested) == "true"}
	var order string
	if json.Unmarshal(raw.Order, &order) == nil && validChildOrder(order) {
		out.Order = order
	}
	return out, true
}

// validChildOrder: the m.space.child schema's order is at most 50 characters of \x20–\x7E;
// anything else is ignored as if absent.
func validChildOrder(s string) bool {
	if s == "" || len(s) > 50 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// SortSpaceChildren puts children in the spec's order ("Ordering of children within a
// space"): those with a valid order first, by order; then by the event's origin_server_ts;
// then by room id.
func SortSpaceChildren(children []SpaceChild) {
	type keyed struct {
		c     SpaceChild
		order string
	}
	ks := make([]keyed, len(children))
	for i, c := range children {
		p, _ := c.Parse()
		ks[i] = keyed{c, p.Order}
	}
	slices.SortStableFunc(ks, func(a, b keyed) int {
		if (a.order == "") != (b.order == "") {
			if a.order != "" {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(a.order, b.order), cmp.Compare(a.c.OriginServerTS, b.c.OriginServerTS),
			cmp.Compare(a.c.StateKey, b.c.StateKey))
	})
	for i := range ks {
		children[i] = ks[i].c
	}
}

// The state event types a summary is made of.
const (
	typeName           = "m.room.name"
	typeTopic          = "m.room.topic"
	typeAvatar         = "m.room.avatar"
	typeCanonicalAlias = "m.room.canonical_alias"
	typeGuestAccess    = "m.room.guest_access"
	typeEncryption     = "m.room.encryption"
	typeSpaceChild     = "m.space.child"
	// RoomTypeSpace is the m.room.create type of a space.
	RoomTypeSpace = "m.space"
)

// RoomSummary reads the summary of a room from its current state here; ErrNotFound if the room
// is unknown or this server holds no create event for it (an invite it was only told of).
func (s *Server) RoomSummary(ctx context.Context, roomID string) (*SpaceRoom, error) {
	room, err := s.room(ctx, s.db, roomID)
	if err != nil {
		return nil, err
	}
	state, err := s.CurrentState(ctx, roomID, auth.TypeCreate, auth.TypeJoinRules, typeName, typeTopic, typeAvatar,
		typeCanonicalAlias, typeHistoryVisibility, typeGuestAccess, typeEncryption, typeSpaceChild)
	if err != nil {
		return nil, err
	}
	counts, err := storage.RoomMemberCounts(ctx, s.db, room.NID)
	if err != nil {
		return nil, err
	}
	sum, ok := summaryFromState(roomID, state)
	if !ok {
		return nil, ErrNotFound
	}
	sum.NumJoinedMembers = counts["join"]
	return sum, nil
}

// summaryFromState builds a summary from the state events of a room (of the types RoomSummary
// reads); ok is false without a create event.
func summaryFromState(roomID string, state []*event.Event) (*SpaceRoom, bool) {
	sum := &SpaceRoom{RoomSummary: RoomSummary{PublicRoom: PublicRoom{RoomID: roomID, JoinRule: "invite"}}, ChildrenState: []SpaceChild{}}
	var create *event.Event
	var children []SpaceChild
	str := func(ev *event.Event, key string) string {
		var m map[string]json.RawMessage
		var v string
		if json.Unmarshal(ev.Content(), &m) == nil {
			_ = json.Unmarshal(m[key], &v)
		}
		return v
	}
	for _, ev := range state {
		switch ev.Type() {
		case auth.TypeCreate:
			create = ev
			sum.RoomType = str(ev, "type")
			sum.RoomVersion = ev.Version().ID
		case auth.TypeJoinRules:
			sum.JoinRule, sum.AllowedRoomIDs = parseJoinRules(ev.Content())
		case typeName:
			sum.Name = str(ev, "name")
		case typeTopic:
			sum.Topic = plainTopic(ev.Content())
		case typeAvatar:
			sum.AvatarURL = str(ev, "url")
		case typeCanonicalAlias:
			sum.CanonicalAlias = str(ev, "alias")
		case typeHistoryVisibility:
			sum.WorldReadable = str(ev, "history_visibility") == VisibilityWorldReadable
		case typeGuestAccess:
			sum.GuestCanJoin = str(ev, "guest_access") == "can_join"
		case typeEncryption:
			sum.Encryption = str(ev, "algorithm")
		case typeSpaceChild:
			c := SpaceChild{Type: ev.Type(), StateKey: *ev.StateKey(), Content: ev.Content(), Sender: ev.Sender(), OriginServerTS: ev.OriginServerTS()}
			if _, ok := c.Parse(); ok {
				children = append(children, c)
			}
		}
	}
	if create == nil {
		return nil, false
	}
	if sum.RoomType == RoomTypeSpace {
		SortSpaceChildren(children)
		sum.ChildrenState = append(sum.ChildrenState, children...)
	}
	return sum, true
}

// parseJoinRules returns the join rule and, for the restricted rules, the rooms whose members
// may join.
func parseJoinRules(content []byte) (rule string, allowed []string) {
	var c struct {
		JoinRule string `json:"join_rule"`
		Allow    []struct {
			Type   string `json:"type"`
			RoomID string `json:"room_id"`
		} `json:"allow"`
	}
	if json.Unmarshal(content, &c) != nil || c.JoinRule == "" {
		return "invite", nil
	}
	if c.JoinRule == "restricted" || c.JoinRule == "knock_restricted" {
		for _, a := range c.Allow {
			if a.Type == "m.room_membership" && a.RoomID != "" {
				allowed = append(allowed, a.RoomID)
			}
		}
	}
	return c.JoinRule, allowed
}

// plainTopic returns the plain-text topic: the topic key, or else the text/plain
// representation of m.topic; "" when there is none.
func plainTopic(content []byte) string {
	var c struct {
		Topic  string `json:"topic"`
		MTopic *struct {
			Text []struct {
				MimeType *string `json:"mimetype"`
				Body     string  `json:"body"`
			} `json:"m.text"`
		} `json:"m.topic"`
	}
	if json.Unmarshal(content, &c) != nil {
		return ""
	}
	if c.Topic != "" || c.MTopic == nil {
		return c.Topic
	}
	for _, t := range c.MTopic.Text {
		if t.MimeType == nil || *t.MimeType == "text/plain" {
			return t.Body
		}
	}
	return ""
}

// Previewer is the membership information a preview decision needs.
type Previewer interface {
	// Membership is the viewer's membership of the room, "" if none.
	Membership(ctx context.Context, roomID string) (string, error)
	// InAnyRoom reports whether the viewer is joined to one of the rooms (a restricted room's
	// allow list).
	InAnyRoom(ctx context.Context, roomIDs []string) (bool, error)
}

// MayPreview decides whether a viewer may see a room's summary without being joined, by the
// rule of the space hierarchy (client-server GET /hierarchy), which /room_summary follows too:
// a member or invitee; a public, knockable or world-readable room; a restricted room whose
// allowed rooms the viewer is in. Banned viewers see only world-readable rooms.
func MayPreview(ctx context.Context, sum *RoomSummary, v Previewer) (membership string, ok bool, err error) {
	if v != nil {
		if membership, err = v.Membership(ctx, sum.RoomID); err != nil {
			return "", false, err
		}
	}
	switch membership {
	case "join", "invite", "knock":
		return membership, true, nil
	case "ban":
		return membership, sum.WorldReadable, nil
	}
	if sum.WorldReadable {
		return membership, true, nil
	}
	version, verr := event.Version(sum.RoomVersion)
	switch sum.JoinRule {
	case "public":
		return membership, true, nil
	case "knock":
		return membership, verr != nil || version.Knocking, nil
	case "knock_restricted":
		if verr != nil || version.KnockRestricted {
			return membership, true, nil
		}
	case "restricted":
		if v != nil && (verr != nil || version.RestrictedJoins) && len(sum.AllowedRoomIDs) > 0 {
			in, err := v.InAnyRoom(ctx, sum.AllowedRoomIDs)
			return membership, in, err
		}
	}
	return membership, false, nil
}

// UserPreviewer is the Previewer of a user of this server (nil for an anonymous viewer).
func (s *Server) UserPreviewer(userID string) Previewer {
	if userID == "" {
		return nil
	}
	return userPreviewer{s, userID}
}

type userPreviewer struct {
	s      *Server
	userID string
}

func (u userPreviewer) Membership(ctx context.Context, roomID string) (string, error) {
	m, err := u.s.Membership(ctx, roomID, u.userID)
	if errors.Is(err, ErrNotFound) {
		return "", nil
	}
	return m, err
}

func (u userPreviewer) InAnyRoom(ctx context.Context, roomIDs []string) (bool, error) {
	for _, id := range roomIDs {
		m, err := u.Membership(ctx, id)
		if err != nil {
			return false, err
		}
		if m == "join" {
			return true, nil
		}
	}
	return false, nil
}

// ServerPreviewer is the Previewer of another server asking over federation: it is "joined"
// where one of its users is, and its users are the ones to check restricted rooms against.
func (s *Server) ServerPreviewer(server string) Previewer { return serverPreviewer{s, server} }

type serverPreviewer struct {
	s      *Server
	server string
}

func (p serverPreviewer) Membership(ctx context.Context, roomID string) (string, error) {
	in, err := p.s.ServerInRoom(ctx, roomID, p.server)
	switch {
	case errors.Is(err, ErrNotFound):
		return "", nil
	case err != nil:
		return "", err
	case !in:
		return "", nil
	}
	return "join", nil
}

func (p serverPreviewer) InAnyRoom(ctx context.Context, roomIDs []string) (bool, error) {
	for _, id := range roomIDs {
		if m, err := p.Membership(ctx, id); err != nil || m == "join" {
			return m == "join", err
		}
	}
	return false, nil
}

// SpaceHierarchy is the answer of the federation GET /hierarchy: a space, the children the
// asking server may see, and those it may not.
type SpaceHierarchy struct {
	Room                 SpaceRoom   `json:"room"`
	Children             []SpaceRoom `json:"children"`
	InaccessibleChildren []string    `json:"inaccessible_children"`
}

// SuggestedChildren keeps the children marked suggested, for suggested_only.
func SuggestedChildren(children []SpaceChild) []SpaceChild {
	out := []SpaceChild{}
	for _, c := range children {
		if p, ok := c.Parse(); ok && p.Suggested {
			out = append(out, c)
		}
	}
	return out
}
