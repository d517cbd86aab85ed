package sytest

import (
	"net/url"
	"slices"
	"testing"

	"myelin/storage"
	"myelin/storage/storagetest"
)

// The published room directory, room summaries and space hierarchies: publishing through the
// visibility API and /createRoom, /publicRooms paging and filters, /room_summary for members
// and strangers, /hierarchy with depth, suggestions and pages, and another server's directory
// and rooms over federation.

// chunkIDs returns the room ids of a /publicRooms (chunk) or /hierarchy (rooms) reply.
func chunkIDs(r Reply, field string) []string {
	list, _ := r.Body[field].([]any)
	var out []string
	for _, e := range list {
		m, _ := e.(map[string]any)
		id, _ := m["room_id"].(string)
		out = append(out, id)
	}
	return out
}

// chunkEntry returns the entry of a list field for a room, nil if absent.
func chunkEntry(r Reply, field, roomID string) map[string]any {
	list, _ := r.Body[field].([]any)
	for _, e := range list {
		if m, _ := e.(map[string]any); m["room_id"] == roomID {
			return m
		}
	}
	return nil
}

func visibility(t *testing.T, c *Client, roomID string) string {
	t.Helper()
	return c.Must(t, 200, "GET", v3+"/directory/list/room/"+esc(roomID), nil).Str("visibility")
}

// allPublicRooms pages through the directory with the given page size and returns every room
// id in order.
func allPublicRooms(t *testing.T, c *Client, limit string) []string {
	t.Helper()
	var out []string
	since := ""
	for pages := 0; ; pages++ {
		if pages > 20 {
			t.Fatal("the directory does not end")
		}
		q := url.Values{"limit": {limit}}
		if since != "" {
			q.Set("since", since)
		}
		r := c.Must(t, 200, "GET", v3+"/publicRooms?"+q.Encode(), nil)
		out = append(out, chunkIDs(r, "chunk")...)
		if since = r.Str("next_batch"); since == "" {
			return out
		}
	}
}

func addChild(t *testing.T, c *Client, space, child string, content map[string]any) {
	t.Helper()
	c.Must(t, 200, "PUT", v3+"/rooms/"+esc(space)+"/state/m.space.child/"+esc(child), content)
}

func TestRoomDirectory(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		alice := Register(t, s, "alice", "pw-alice-1")
		bob := Register(t, s, "bob", "pw-bob-1")
		carol := Register(t, s, "carol", "pw-carol-1")

		// Publishing: through /createRoom, or afterwards by a user with the power to set the
		// canonical alias; never by default.
		cheese := createRoom(t, alice, map[string]any{"preset": "public_chat", "visibility": "public",
			"name": "Cheese Shop", "topic": "Tasty cheese", "room_alias_name": "cheese"})
		secret := createRoom(t, alice, map[string]any{"preset": "private_chat", "name": "Cheese secrets"})
		later := createRoom(t, alice, map[string]any{"preset": "public_chat", "name": "Later"})
		space := createRoom(t, alice, map[string]any{"preset": "public_chat", "visibility": "public", "name": "Dairy space",
			"creation_content": map[string]any{"type": "m.space"}})
		if v := visibility(t, alice, cheese); v != "public" {
			t.Fatalf("createRoom visibility=public: %s", v)
		}
		for _, id := range []string{secret, later} {
			if v := visibility(t, alice, id); v != "private" {
				t.Fatalf("a room created without visibility is %s", v)
			}
		}
		bob.MustErr(t, 403, "M_FORBIDDEN", "PUT", v3+"/directory/list/room/"+esc(later), map[string]any{"visibility": "public"})
		alice.MustErr(t, 404, "M_NOT_FOUND", "PUT", v3+"/directory/list/room/"+esc("!nowhere:localhost"), map[string]any{"visibility": "public"})
		alice.MustErr(t, 404, "M_NOT_FOUND", "GET", v3+"/directory/list/room/"+esc("!nowhere:localhost"), nil)
		alice.MustErr(t, 400, "M_INVALID_PARAM", "PUT", v3+"/directory/list/room/"+esc(later), map[string]any{"visibility": "everyone"})
		alice.Must(t, 200, "PUT", v3+"/directory/list/room/"+esc(later), map[string]any{}) // public is the default
		if v := visibility(t, bob, later); v != "public" {
			t.Fatalf("after PUT: %s", v)
		}
		bob.Must(t, 200, "POST", v3+"/join/"+esc(cheese), map[string]any{})

		// The directory needs a token by default (directory.require_auth).
		Anonymous(s).MustErr(t, 401, "M_MISSING_TOKEN", "GET", v3+"/publicRooms", nil)

		// Most members first, then by room id; pages of one reach every room exactly once.
		rest := []string{later, space}
		slices.Sort(rest)
		want := append([]string{cheese}, rest...)
		if got := allPublicRooms(t, carol, "1"); !slices.Equal(got, want) {
			t.Fatalf("paged directory %v, want %v", got, want)
		}
		if got := allPublicRooms(t, carol, "50"); !slices.Equal(got, want) {
			t.Fatalf("directory %v, want %v", got, want)
		}
		first := carol.Must(t, 200, "GET", v3+"/publicRooms?limit=2", nil)
		if first.Str("prev_batch") != "" || first.Str("next_batch") == "" || first.Body["total_room_count_estimate"] != float64(3) {
			t.Fatalf("first page: %s", first.Raw)
		}
		second := carol.Must(t, 200, "GET", v3+"/publicRooms?limit=2&since="+url.QueryEscape(first.Str("next_batch")), nil)
		back := carol.Must(t, 200, "GET", v3+"/publicRooms?limit=2&since="+url.QueryEscape(second.Str("prev_batch")), nil)
		if !slices.Equal(chunkIDs(back, "chunk"), chunkIDs(first, "chunk")) {
			t.Fatalf("prev_batch of the second page gives %v, want %v", chunkIDs(back, "chunk"), chunkIDs(first, "chunk"))
		}
		e := chunkEntry(first, "chunk", cheese)
		if e["name"] != "Cheese Shop" || e["topic"] != "Tasty cheese" || e["canonical_alias"] != "#cheese:localhost" ||
			e["num_joined_members"] != float64(2) || e["join_rule"] != "public" || e["world_readable"] != false || e["guest_can_join"] != false {
			t.Fatalf("chunk entry %v", e)
		}
		carol.MustErr(t, 400, "M_INVALID_PARAM", "GET", v3+"/publicRooms?since=garbage", nil)
		carol.MustErr(t, 400, "M_INVALID_PARAM", "GET", v3+"/publicRooms?limit=-1", nil)

		// Filters: a search term over name, topic and alias; room types with null for rooms
		// without a type; third-party networks (none here).
		post := func(body map[string]any) []string {
			return chunkIDs(carol.Must(t, 200, "POST", v3+"/publicRooms", body), "chunk")
		}
		if got := post(map[string]any{"filter": map[string]any{"generic_search_term": "CHEESE"}}); !slices.Equal(got, []string{cheese}) {
			t.Fatalf("search: %v", got)
		}
		if got := post(map[string]any{"filter": map[string]any{"generic_search_term": "tasty"}}); !slices.Equal(got, []string{cheese}) {
			t.Fatalf("search in topics: %v", got)
		}
		if got := post(map[string]any{"filter": map[string]any{"room_types": []any{"m.space"}}}); !slices.Equal(got, []string{space}) {
			t.Fatalf("spaces: %v", got)
		}
		if got := post(map[string]any{"filter": map[string]any{"room_types": []any{nil}}}); !slices.Equal(got, []string{cheese, later}) {
			t.Fatalf("rooms without a type: %v", got)
		}
		if got := post(map[string]any{"limit": 1, "include_all_networks": true}); !slices.Equal(got, []string{cheese}) {
			t.Fatalf("include_all_networks: %v", got)
		}
		if got := post(map[string]any{"third_party_instance_id": "irc"}); len(got) != 0 {
			t.Fatalf("a third-party network: %v", got)
		}
		carol.MustErr(t, 400, "M_INVALID_PARAM", "POST", v3+"/publicRooms", map[string]any{"include_all_networks": true, "third_party_instance_id": "irc"})
		carol.MustErr(t, 400, "M_BAD_JSON", "POST", v3+"/publicRooms", map[string]any{"limit": "ten"})
		Anonymous(s).MustErr(t, 401, "M_MISSING_TOKEN", "POST", v3+"/publicRooms", map[string]any{})

		// Withdrawing a room; the unpublished room never showed.
		alice.Must(t, 200, "PUT", v3+"/directory/list/room/"+esc(later), map[string]any{"visibility": "private"})
		if got := allPublicRooms(t, carol, "10"); !slices.Equal(got, []string{cheese, space}) {
			t.Fatalf("after withdrawing: %v", got)
		}

		// Room summaries: a public room for a stranger, by id and by alias; a private room is
		// not found for a stranger and summarised for a member.
		sum := carol.Must(t, 200, "GET", v1+"/room_summary/"+esc(cheese), nil)
		if sum.Str("room_id") != cheese || sum.Str("name") != "Cheese Shop" || sum.Str("membership") != "leave" ||
			sum.Str("join_rule") != "public" || sum.Str("room_version") == "" || sum.Body["num_joined_members"] != float64(2) {
			t.Fatalf("summary for a stranger: %s", sum.Raw)
		}
		if byAlias := bob.Must(t, 200, "GET", v1+"/room_summary/"+esc("#cheese:localhost"), nil); byAlias.Str("room_id") != cheese || byAlias.Str("membership") != "join" {
			t.Fatalf("summary by alias for a member: %s", byAlias.Raw)
		}
		carol.MustErr(t, 404, "M_NOT_FOUND", "GET", v1+"/room_summary/"+esc(secret), nil)
		carol.MustErr(t, 404, "M_NOT_FOUND", "GET", v1+"/room_summary/"+esc("!nowhere:localhost"), nil)
		mine := alice.Must(t, 200, "GET", v1+"/room_summary/"+esc(secret), nil)
		if mine.Str("membership") != "join" || mine.Str("encryption") != "m.megolm.v1.aes-sha2" || mine.Str("join_rule") != "invite" {
			t.Fatalf("summary of a private room for its member: %s", mine.Raw)
		}
		Anonymous(s).MustErr(t, 401, "M_MISSING_TOKEN", "GET", v1+"/room_summary/"+esc(cheese), nil)

		// A space: cheese (suggested, first by order), the private room (hidden from carol),
		// and a sub-space with a room of its own.
		sub := createRoom(t, alice, map[string]any{"preset": "public_chat", "name": "Sub space",
			"creation_content": map[string]any{"type": "m.space"}})
		deep := createRoom(t, alice, map[string]any{"preset": "public_chat", "name": "Deep room"})
		via := []string{"localhost"}
		addChild(t, alice, space, cheese, map[string]any{"via": via, "order": "a", "suggested": true})
		addChild(t, alice, space, secret, map[string]any{"via": via, "order": "b"})
		addChild(t, alice, space, sub, map[string]any{"via": via, "order": "c"})
		addChild(t, alice, space, later, map[string]any{}) // no via: not a child
		addChild(t, alice, sub, deep, map[string]any{"via": via})

		h := carol.Must(t, 200, "GET", v1+"/rooms/"+esc(space)+"/hierarchy", nil)
		if got := chunkIDs(h, "rooms"); !slices.Equal(got, []string{space, cheese, sub, deep}) || h.Str("next_batch") != "" {
			t.Fatalf("hierarchy for carol: %v: %s", got, h.Raw)
		}
		root := chunkEntry(h, "rooms", space)
		var children []string
		for _, c := range root["children_state"].([]any) {
			ev := c.(map[string]any)
			if ev["type"] != "m.space.child" || ev["origin_server_ts"] == nil || ev["sender"] != alice.UserID {
				t.Fatalf("children_state entry %v", ev)
			}
			children = append(children, ev["state_key"].(string))
		}
		if !slices.Equal(children, []string{cheese, secret, sub}) {
			t.Fatalf("children_state %v (the private room is listed there, and only there)", children)
		}
		if e := chunkEntry(h, "rooms", cheese); len(e["children_state"].([]any)) != 0 || e["num_joined_members"] != float64(2) {
			t.Fatalf("a room in the hierarchy: %v", e)
		}
		if got := chunkIDs(alice.Must(t, 200, "GET", v1+"/rooms/"+esc(space)+"/hierarchy", nil), "rooms"); !slices.Equal(got, []string{space, cheese, secret, sub, deep}) {
			t.Fatalf("hierarchy for the members of everything: %v", got)
		}
		if got := chunkIDs(carol.Must(t, 200, "GET", v1+"/rooms/"+esc(space)+"/hierarchy?max_depth=1", nil), "rooms"); !slices.Equal(got, []string{space, cheese, sub}) {
			t.Fatalf("max_depth=1: %v", got)
		}
		if got := chunkIDs(carol.Must(t, 200, "GET", v1+"/rooms/"+esc(space)+"/hierarchy?max_depth=0", nil), "rooms"); !slices.Equal(got, []string{space}) {
			t.Fatalf("max_depth=0: %v", got)
		}
		sugg := carol.Must(t, 200, "GET", v1+"/rooms/"+esc(space)+"/hierarchy?suggested_only=true", nil)
		if got := chunkIDs(sugg, "rooms"); !slices.Equal(got, []string{space, cheese}) {
			t.Fatalf("suggested_only: %v", got)
		}
		p1 := carol.Must(t, 200, "GET", v1+"/rooms/"+esc(space)+"/hierarchy?limit=3", nil)
		if got := chunkIDs(p1, "rooms"); !slices.Equal(got, []string{space, cheese, sub}) || p1.Str("next_batch") == "" {
			t.Fatalf("first page: %s", p1.Raw)
		}
		from := url.QueryEscape(p1.Str("next_batch"))
		p2 := carol.Must(t, 200, "GET", v1+"/rooms/"+esc(space)+"/hierarchy?limit=3&from="+from, nil)
		if got := chunkIDs(p2, "rooms"); !slices.Equal(got, []string{deep}) || p2.Str("next_batch") != "" {
			t.Fatalf("second page: %s", p2.Raw)
		}
		carol.MustErr(t, 400, "M_INVALID_PARAM", "GET", v1+"/rooms/"+esc(space)+"/hierarchy?max_depth=1&from="+from, nil)
		carol.MustErr(t, 400, "M_INVALID_PARAM", "GET", v1+"/rooms/"+esc(space)+"/hierarchy?from=garbage", nil)
		carol.MustErr(t, 400, "M_INVALID_PARAM", "GET", v1+"/rooms/"+esc(space)+"/hierarchy?limit=0", nil)
		carol.MustErr(t, 403, "M_FORBIDDEN", "GET", v1+"/rooms/"+esc(secret)+"/hierarchy", nil)
		carol.MustErr(t, 403, "M_FORBIDDEN", "GET", v1+"/rooms/"+esc("!nowhere:localhost")+"/hierarchy", nil)
	})
}

// directoryFedPair is roomFedPair with a configuration for each server.
func directoryFedPair(t *testing.T, dbURL string, cfg1, cfg2 map[string]any) (hs1, hs2 *Server) {
	t.Helper()
	ca := NewCA(t)
	db := func() string {
		if dbURL == "" {
			return ""
		}
		return storagetest.NewConfig(t, storage.Postgres).URL
	}
	hs1 = Start(t, Options{ServerName: "hs1.test", CA: ca, DatabaseURL: db(), Config: cfg1})
	merge(cfg2, map[string]any{"federation": map[string]any{"static_hosts": map[string]string{"hs1.test": fedAddr(hs1)}}})
	hs2 = Start(t, Options{ServerName: "hs2.test", CA: ca, DatabaseURL: db(), Config: cfg2})
	setStaticHost(t, hs1, "hs2.test", fedAddr(hs2))
	hs1.Restart(t)
	return hs1, hs2
}

// Another server's directory through server=, and summaries of its rooms through the
// federation /hierarchy endpoint, for a space here whose child lives there.
func TestRoomDirectoryFederation(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		// hs2 shares its directory and lets anyone browse it; hs1 keeps the defaults.
		hs1, hs2 := directoryFedPair(t, dbURL, nil, map[string]any{
			"directory": map[string]any{"federate": true, "require_auth": false},
		})
		bob := Register(t, hs1, "bob", "pw-bob-1")
		alice := Register(t, hs2, "alice", "pw-alice-1")
		pub := createRoom(t, alice, map[string]any{"preset": "public_chat", "visibility": "public", "name": "Remote Pub", "topic": "far away"})
		createRoom(t, alice, map[string]any{"preset": "public_chat", "name": "Unlisted"})
		spaceThere := createRoom(t, alice, map[string]any{"preset": "public_chat", "visibility": "public", "name": "Remote space",
			"creation_content": map[string]any{"type": "m.space"}})

		// require_auth off on hs2: anyone may read its directory and summaries there.
		if got := chunkIDs(Anonymous(hs2).Must(t, 200, "GET", v3+"/publicRooms", nil), "chunk"); len(got) != 2 {
			t.Fatalf("anonymous directory of hs2: %v", got)
		}
		Anonymous(hs2).Must(t, 200, "GET", v1+"/room_summary/"+esc(pub), nil)

		remote := bob.Must(t, 200, "GET", v3+"/publicRooms?server=hs2.test", nil)
		if got := chunkIDs(remote, "chunk"); len(got) != 2 || !slices.Contains(got, pub) || !slices.Contains(got, spaceThere) {
			t.Fatalf("hs2's directory seen from hs1: %s", remote.Raw)
		}
		if e := chunkEntry(remote, "chunk", pub); e["name"] != "Remote Pub" || e["topic"] != "far away" {
			t.Fatalf("remote chunk entry %v", e)
		}
		paged := bob.Must(t, 200, "GET", v3+"/publicRooms?server=hs2.test&limit=1", nil)
		next := bob.Must(t, 200, "GET", v3+"/publicRooms?server=hs2.test&limit=1&since="+url.QueryEscape(paged.Str("next_batch")), nil)
		if a, b := chunkIDs(paged, "chunk"), chunkIDs(next, "chunk"); len(a) != 1 || len(b) != 1 || a[0] == b[0] {
			t.Fatalf("remote pages %v then %v", a, b)
		}
		filtered := bob.Must(t, 200, "POST", v3+"/publicRooms?server=hs2.test", map[string]any{"filter": map[string]any{"generic_search_term": "pub"}})
		if got := chunkIDs(filtered, "chunk"); !slices.Equal(got, []string{pub}) {
			t.Fatalf("remote search: %s", filtered.Raw)
		}
		// hs1 does not share its directory (directory.federate defaults to false).
		alice.MustErr(t, 403, "M_FORBIDDEN", "GET", v3+"/publicRooms?server=hs1.test", nil)

		// A summary of a room hs1 is not in, through the via server.
		sum := bob.Must(t, 200, "GET", v1+"/room_summary/"+esc(pub)+"?via=hs2.test", nil)
		if sum.Str("name") != "Remote Pub" || sum.Str("membership") != "leave" || sum.Body["num_joined_members"] != float64(1) {
			t.Fatalf("remote summary: %s", sum.Raw)
		}
		bob.MustErr(t, 404, "M_NOT_FOUND", "GET", v1+"/room_summary/"+esc(pub), nil) // no via: nobody to ask

		// A space on hs1 with a child on hs2: the child is filled in over federation.
		space := createRoom(t, bob, map[string]any{"preset": "public_chat", "name": "Bob's space",
			"creation_content": map[string]any{"type": "m.space"}})
		addChild(t, bob, space, spaceThere, map[string]any{"via": []string{"hs2.test"}})
		addChild(t, alice, spaceThere, pub, map[string]any{"via": []string{"hs2.test"}})
		h := bob.Must(t, 200, "GET", v1+"/rooms/"+esc(space)+"/hierarchy", nil)
		if got := chunkIDs(h, "rooms"); !slices.Equal(got, []string{space, spaceThere, pub}) {
			t.Fatalf("hierarchy across servers: %s", h.Raw)
		}
		if e := chunkEntry(h, "rooms", spaceThere); e["name"] != "Remote space" || e["room_type"] != "m.space" {
			t.Fatalf("remote space in the hierarchy: %v", e)
		}
	})
}
