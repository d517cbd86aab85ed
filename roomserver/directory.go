package roomserver

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"myelin/storage"
)

// The published room directory: the rooms this server lists, most joined members first, for
// GET/POST /publicRooms of both APIs.

// PublicRoomsQuery is a page request of the room directory.
type PublicRoomsQuery struct {
	// Limit bounds the page; 0 means MaxPublicRoomsLimit.
	Limit int
	// Since is a next_batch or prev_batch token of an earlier page.
	Since string
	// SearchTerm keeps rooms whose name, topic or canonical alias contain it, case-insensitively.
	SearchTerm string
	// RoomTypes keeps rooms of these types; a nil entry stands for rooms without a type. A nil
	// slice keeps every room.
	RoomTypes []*string
}

// PublicRoomsPage is a page of the directory in the wire format of public_rooms_response.
type PublicRoomsPage struct {
	Chunk     []PublicRoom `json:"chunk"`
	NextBatch string       `json:"next_batch,omitempty"`
	PrevBatch string       `json:"prev_batch,omitempty"`
	// Total is the number of published rooms, before any filter.
	Total int `json:"total_room_count_estimate"`
}

// MaxPublicRoomsLimit is the most rooms one page holds.
const MaxPublicRoomsLimit = 500

// directoryPos is a position between two entries of the directory's order.
type directoryPos struct {
	joined int
	roomID string
}

// before says whether entry p comes before entry q in the directory's order.
func (p directoryPos) before(q directoryPos) bool {
	return p.joined > q.joined || p.joined == q.joined && p.roomID < q.roomID
}

// A token is "n" (rooms after) or "p" (rooms before) followed by the joined count and room id of
// the page's edge, base64url-encoded so that clients treat it as opaque. Keyed on the order
// itself rather than an offset, a page stays correct when rooms are published or withdrawn
// between requests.
func directoryToken(dir byte, p directoryPos) string {
	return base64.RawURLEncoding.EncodeToString([]byte(string(dir) + strconv.Itoa(p.joined) + "|" + p.roomID))
}

func parseDirectoryToken(tok string) (dir byte, p directoryPos, err error) {
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(raw) < 2 || (raw[0] != 'n' && raw[0] != 'p') {
		return 0, p, fmt.Errorf("%w: unknown pagination token", ErrInvalid)
	}
	count, roomID, ok := strings.Cut(string(raw[1:]), "|")
	n, cerr := strconv.Atoi(count)
	if !ok || cerr != nil || n < 0 || !strings.HasPrefix(roomID, "!") {
		return 0, p, fmt.Errorf("%w: unknown pagination token", ErrInvalid)
	}
	return raw[0], directoryPos{n, roomID}, nil
}

// PublicRooms returns a page of the published room directory. Summaries are read only until
// the page is full, so a large directory costs one list query and about a page of room reads
// (more when a filter leaves rooms out). ErrInvalid: a token this server did not make.
func (s *Server) PublicRooms(ctx context.Context, q PublicRoomsQuery) (PublicRoomsPage, error) {
	limit := q.Limit
	if limit <= 0 || limit > MaxPublicRoomsLimit {
		limit = MaxPublicRoomsLimit
	}
	dir, edge := byte('n'), directoryPos{}
	if q.Since != "" {
		var err error
		if dir, edge, err = parseDirectoryToken(q.Since); err != nil {
			return PublicRoomsPage{}, err
		}
	}
	all, err := storage.PublishedRoomsByMembers(ctx, s.db)
	if err != nil {
		return PublicRoomsPage{}, err
	}
	page := PublicRoomsPage{Chunk: []PublicRoom{}, Total: len(all)}

	// Walk forwards from the edge for a next page, backwards for a previous one; one room more
	// than the limit tells whether there is a page beyond.
	var order []storage.PublishedRoom
	if dir == 'n' {
		for _, p := range all {
			if q.Since == "" || edge.before(directoryPos{p.JoinedMembers, p.RoomID}) {
				order = append(order, p)
			}
		}
	} else {
		for i := len(all) - 1; i >= 0; i-- {
			if p := all[i]; (directoryPos{p.JoinedMembers, p.RoomID}).before(edge) {
				order = append(order, p)
			}
		}
	}
	var found []PublicRoom
	more := false
	for _, p := range order {
		sum, err := s.RoomSummary(ctx, p.RoomID)
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				continue
			}
			return PublicRoomsPage{}, err
		}
		sum.NumJoinedMembers = p.JoinedMembers // the count the order was made with
		if !q.matches(sum) {
			continue
		}
		if len(found) == limit {
			more = true
			break
		}
		found = append(found, sum.PublicRoom)
	}
	if dir == 'p' {
		slices.Reverse(found)
	}
	page.Chunk = append(page.Chunk, found...)
	if len(found) == 0 {
		return page, nil
	}
	first := directoryPos{found[0].NumJoinedMembers, found[0].RoomID}
	last := directoryPos{found[len(found)-1].NumJoinedMembers, found[len(found)-1].RoomID}
	// Going forwards, there is a previous page when we started from a token; going backwards,
	// there is a next page (the one we came from).
	if dir == 'n' {
		if more {
			page.NextBatch = directoryToken('n', last)
		}
		if q.Since != "" {
			page.PrevBatch = directoryToken('p', first)
		}
	} else {
		page.NextBatch = directoryToken('n', last)
		if more {
			page.PrevBatch = directoryToken('p', first)
		}
	}
	return page, nil
}

// matches applies the query's filter to a summary.
func (q PublicRoomsQuery) matches(sum *SpaceRoom) bool {
	if q.RoomTypes != nil {
		ok := false
		for _, t := range q.RoomTypes {
			if t == nil && sum.RoomType == "" || t != nil && *t == sum.RoomType {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if term := strings.ToLower(strings.TrimSpace(q.SearchTerm)); term != "" {
		return strings.Contains(strings.ToLower(sum.Name), term) ||
			strings.Contains(strings.ToLower(sum.Topic), term) ||
			strings.Contains(strings.ToLower(sum.CanonicalAlias), term)
	}
	return true
}

// PublicRoomsRequest is the body of POST /publicRooms in both APIs, and what the outbound
// client sends for a client's server= request.
type PublicRoomsRequest struct {
	Limit  *int   `json:"limit,omitempty"`
	Since  string `json:"since,omitempty"`
	Filter *struct {
		GenericSearchTerm string    `json:"generic_search_term,omitempty"`
		RoomTypes         []*string `json:"room_types,omitempty"`
	} `json:"filter,omitempty"`
	IncludeAllNetworks   bool   `json:"include_all_networks,omitempty"`
	ThirdPartyInstanceID string `json:"third_party_instance_id,omitempty"`
}

// Query checks a request and returns the directory query it asks for. third is true when it
// names a third-party network: this server bridges none, so the answer is an empty page.
// ErrInvalid: a negative limit, or a network together with include_all_networks.
func (r PublicRoomsRequest) Query() (q PublicRoomsQuery, third bool, err error) {
	if r.Limit != nil {
		if *r.Limit < 0 {
			return q, false, fmt.Errorf("%w: limit must not be negative", ErrInvalid)
		}
		q.Limit = *r.Limit
	}
	if r.IncludeAllNetworks && r.ThirdPartyInstanceID != "" {
		return q, false, fmt.Errorf("%w: third_party_instance_id cannot be used with include_all_networks", ErrInvalid)
	}
	q.Since = r.Since
	if r.Filter != nil {
		q.SearchTerm = r.Filter.GenericSearchTerm
		if len(r.Filter.RoomTypes) > 0 {
			q.RoomTypes = r.Filter.RoomTypes
		}
	}
	return q, r.ThirdPartyInstanceID != "", nil
}

// EmptyPublicRoomsPage is the answer for a third-party network this server does not have.
func EmptyPublicRoomsPage() PublicRoomsPage { return PublicRoomsPage{Chunk: []PublicRoom{}} }
