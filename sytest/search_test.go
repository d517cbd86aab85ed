package sytest

import (
	"fmt"
	"net/url"
	"slices"
	"testing"
)

// Black-box tests of server-side search (POST /search), the user directory and mutual rooms.

// searchReply runs a room_events search and returns the category's result.
func searchReply(t *testing.T, c *Client, criteria map[string]any, nextBatch string) map[string]any {
	t.Helper()
	path := v3 + "/search"
	if nextBatch != "" {
		path += "?next_batch=" + url.QueryEscape(nextBatch)
	}
	r := c.Must(t, 200, "POST", path, map[string]any{"search_categories": map[string]any{"room_events": criteria}})
	cats, _ := r.Body["search_categories"].(map[string]any)
	res, _ := cats["room_events"].(map[string]any)
	if res == nil {
		t.Fatalf("search: no room_events in %s", r.Raw)
	}
	return res
}

// resultIDs returns the event ids of the results, in order.
func resultIDs(res map[string]any) []string {
	list, _ := res["results"].([]any)
	out := []string{}
	for _, x := range list {
		r, _ := x.(map[string]any)
		ev, _ := r["result"].(map[string]any)
		id, _ := ev["event_id"].(string)
		out = append(out, id)
	}
	return out
}

func searchSendEvent(t *testing.T, c *Client, roomID, typ string, content map[string]any) string {
	t.Helper()
	txn := fmt.Sprintf("txn%d", txnCounter.Add(1))
	return c.Must(t, 200, "PUT", v3+"/rooms/"+esc(roomID)+"/send/"+typ+"/"+txn, content).Str("event_id")
}

func TestSearchRoomEvents(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		alice := Register(t, s, "alice", "correct horse battery")
		bob := Register(t, s, "bob", "correct horse battery")
		room := createRoom(t, alice, map[string]any{"preset": "public_chat", "name": "Plover gathering"})
		other := createRoom(t, alice, map[string]any{"preset": "public_chat"})
		bob.Must(t, 200, "POST", v3+"/join/"+esc(room), map[string]any{})

		before := sendText(t, alice, room, "warm up")
		once := sendText(t, alice, room, "a long message where the word plover appears only once among many other words")
		twice := sendText(t, bob, room, "plover plover")
		after := sendText(t, alice, room, "cool down")
		elsewhere := sendText(t, alice, other, "plover in another room")
		encrypted := searchSendEvent(t, alice, room, "m.room.encrypted", map[string]any{
			"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgA", "body": "plover smuggled"})
		// bob's own searches may not see the room bob is not in.
		bobSecret := createRoom(t, alice, map[string]any{"preset": "public_chat"})
		secret := sendText(t, alice, bobSecret, "plover secret")
		// A private room is encrypted by default: never searched, not even its name.
		private := createRoom(t, bob, map[string]any{"preset": "private_chat", "name": "plover private"})
		_ = private

		t.Run("found by a word prefix, ranked", func(t *testing.T) {
			res := searchReply(t, bob, map[string]any{"search_term": "PLOV"}, "")
			ids := resultIDs(res)
			nameEvent := ""
			for _, id := range ids {
				if id != once && id != twice {
					nameEvent = id
				}
			}
			if len(ids) != 3 || ids[0] != twice || nameEvent == "" || slices.Contains(ids, elsewhere) || slices.Contains(ids, encrypted) {
				t.Fatalf("results %v: want %s first, %s, and the room name event; never %s or %s", ids, twice, once, elsewhere, encrypted)
			}
			if ids[len(ids)-1] != once {
				t.Errorf("the long message should rank last: %v", ids)
			}
			if c, _ := res["count"].(float64); c != 3 {
				t.Errorf("count = %v, want 3", res["count"])
			}
			hl, _ := res["highlights"].([]any)
			if !slices.Contains(hl, any("plover")) {
				t.Errorf("highlights %v lack plover", hl)
			}
			list := res["results"].([]any)
			r0, r1 := list[0].(map[string]any)["rank"].(float64), list[1].(map[string]any)["rank"].(float64)
			if r0 <= 0 || r0 < r1 {
				t.Errorf("ranks %v, %v: want positive and descending", r0, r1)
			}
		})

		t.Run("keys", func(t *testing.T) {
			res := searchReply(t, bob, map[string]any{"search_term": "plover", "keys": []string{"content.name"}}, "")
			ids := resultIDs(res)
			if len(ids) != 1 || ids[0] == once || ids[0] == twice {
				t.Errorf("content.name results %v", ids)
			}
		})

		t.Run("recent order and next_batch", func(t *testing.T) {
			crit := map[string]any{"search_term": "plover", "order_by": "recent", "keys": []string{"content.body"},
				"filter": map[string]any{"limit": 1}}
			first := searchReply(t, alice, crit, "")
			if ids := resultIDs(first); len(ids) != 1 || ids[0] != secret {
				t.Fatalf("first page %v, want [%s]", ids, secret)
			}
			var got []string
			next, _ := first["next_batch"].(string)
			for pages := 0; next != "" && pages < 10; pages++ {
				page := searchReply(t, alice, crit, next)
				got = append(got, resultIDs(page)...)
				next, _ = page["next_batch"].(string)
			}
			if want := []string{elsewhere, twice, once}; !slices.Equal(got, want) {
				t.Errorf("later pages %v, want %v", got, want)
			}
			// A token of one order is refused in the other.
			r := alice.Do(t, "POST", v3+"/search?next_batch="+url.QueryEscape(first["next_batch"].(string)),
				map[string]any{"search_categories": map[string]any{"room_events": map[string]any{"search_term": "plover"}}})
			if r.Status != 400 || r.Str("errcode") != "M_INVALID_PARAM" {
				t.Errorf("token of another order: %d %s", r.Status, r.Raw)
			}
		})

		t.Run("rooms never joined are not searched", func(t *testing.T) {
			res := searchReply(t, bob, map[string]any{"search_term": "secret"}, "")
			if ids := resultIDs(res); len(ids) != 0 {
				t.Errorf("bob found %v in a room he never joined", ids)
			}
			res = searchReply(t, bob, map[string]any{"search_term": "private"}, "")
			if ids := resultIDs(res); len(ids) != 0 {
				t.Errorf("the name of an encrypted room was found: %v", ids)
			}
			res = searchReply(t, alice, map[string]any{"search_term": "smuggled"}, "")
			if ids := resultIDs(res); len(ids) != 0 {
				t.Errorf("an m.room.encrypted event was found: %v", ids)
			}
		})

		t.Run("context", func(t *testing.T) {
			res := searchReply(t, bob, map[string]any{"search_term": "plover", "keys": []string{"content.body"},
				"event_context": map[string]any{"before_limit": 1, "after_limit": 2, "include_profile": true}}, "")
			list, _ := res["results"].([]any)
			if len(list) != 2 {
				t.Fatalf("results %s", asMap(t, res))
			}
			var cx map[string]any
			for _, x := range list {
				r := x.(map[string]any)
				if r["result"].(map[string]any)["event_id"] == once {
					cx, _ = r["context"].(map[string]any)
				}
			}
			if cx == nil {
				t.Fatalf("no context for %s: %v", once, list)
			}
			eb := roomEvents(Reply{Body: cx}, "events_before")
			ea := roomEvents(Reply{Body: cx}, "events_after")
			if len(eb) != 1 || eb[0]["event_id"] != before {
				t.Errorf("events_before = %v, want [%s]", eb, before)
			}
			if len(ea) != 2 || ea[0]["event_id"] != twice || ea[1]["event_id"] != after {
				t.Errorf("events_after = %v, want [%s %s]", ea, twice, after)
			}
			if cx["start"] == nil || cx["end"] == nil {
				t.Errorf("context lacks start/end: %v", cx)
			}
			profiles, _ := cx["profile_info"].(map[string]any)
			if _, ok := profiles[alice.UserID]; !ok {
				t.Errorf("profile_info %v lacks %s", profiles, alice.UserID)
			}
		})

		t.Run("groupings and state", func(t *testing.T) {
			res := searchReply(t, alice, map[string]any{"search_term": "plover", "keys": []string{"content.body"}, "include_state": true,
				"groupings": map[string]any{"group_by": []any{map[string]any{"key": "room_id"}, map[string]any{"key": "sender"}}}}, "")
			groups, _ := res["groups"].(map[string]any)
			byRoom, _ := groups["room_id"].(map[string]any)
			g, _ := byRoom[room].(map[string]any)
			if ids, _ := g["results"].([]any); len(ids) != 2 || !slices.Contains(ids, any(once)) || !slices.Contains(ids, any(twice)) {
				t.Errorf("group of %s = %v", room, g)
			}
			if g, _ := byRoom[other].(map[string]any); g == nil || g["order"] == nil {
				t.Errorf("group of %s = %v", other, g)
			}
			bySender, _ := groups["sender"].(map[string]any)
			if g, _ := bySender[bob.UserID].(map[string]any); g == nil || len(g["results"].([]any)) != 1 {
				t.Errorf("group of sender %s = %v", bob.UserID, g)
			}
			state, _ := res["state"].(map[string]any)
			if evs, _ := state[room].([]any); len(evs) == 0 {
				t.Errorf("no state for %s: %v", room, state)
			}

			// A group's next_batch continues within the group.
			crit := map[string]any{"search_term": "plover", "keys": []string{"content.body"}, "order_by": "recent",
				"filter":    map[string]any{"limit": 1, "not_rooms": []string{other, bobSecret}},
				"groupings": map[string]any{"group_by": []any{map[string]any{"key": "room_id"}}}}
			paged := searchReply(t, alice, crit, "")
			if ids := resultIDs(paged); !slices.Equal(ids, []string{twice}) {
				t.Fatalf("first page %v, want [%s]", ids, twice)
			}
			g0, _ := paged["groups"].(map[string]any)["room_id"].(map[string]any)[room].(map[string]any)
			tok, _ := g0["next_batch"].(string)
			if tok == "" {
				t.Fatalf("no group next_batch: %v", paged["groups"])
			}
			delete(crit["filter"].(map[string]any), "not_rooms")
			rest := searchReply(t, alice, crit, tok)
			if ids := resultIDs(rest); !slices.Equal(ids, []string{once}) {
				t.Errorf("next page of the group of %s = %v, want [%s]", room, ids, once)
			}
		})

		t.Run("filter", func(t *testing.T) {
			res := searchReply(t, alice, map[string]any{"search_term": "plover", "filter": map[string]any{
				"senders": []string{bob.UserID}, "rooms": []string{room}}}, "")
			if ids := resultIDs(res); len(ids) != 1 || ids[0] != twice {
				t.Errorf("filtered results %v, want [%s]", ids, twice)
			}
			res = searchReply(t, alice, map[string]any{"search_term": "plover", "filter": map[string]any{"not_rooms": []string{room, bobSecret}}}, "")
			if ids := resultIDs(res); len(ids) != 1 || ids[0] != elsewhere {
				t.Errorf("not_rooms results %v, want [%s]", ids, elsewhere)
			}
		})

		t.Run("a redacted message is no longer found", func(t *testing.T) {
			redact(t, bob, room, twice, "", 200)
			res := searchReply(t, alice, map[string]any{"search_term": "plover", "keys": []string{"content.body"}}, "")
			if ids := resultIDs(res); slices.Contains(ids, twice) {
				t.Errorf("redacted %s still found: %v", twice, ids)
			}
		})

		t.Run("after leaving, later messages are not found", func(t *testing.T) {
			bob.Must(t, 200, "POST", v3+"/rooms/"+esc(room)+"/leave", map[string]any{})
			later := sendText(t, alice, room, "plover after bob left")
			ids := resultIDs(searchReply(t, bob, map[string]any{"search_term": "plover", "keys": []string{"content.body"}}, ""))
			if slices.Contains(ids, later) || !slices.Contains(ids, once) {
				t.Errorf("bob after leaving found %v: want %s and not %s", ids, once, later)
			}
		})

		t.Run("errors", func(t *testing.T) {
			bad := func(body any, status int, code, query string) {
				t.Helper()
				alice.MustErr(t, status, code, "POST", v3+"/search"+query, body)
			}
			bad(map[string]any{}, 400, "M_BAD_JSON", "")
			bad(map[string]any{"search_categories": map[string]any{"room_events": map[string]any{}}}, 400, "M_BAD_JSON", "")
			bad(map[string]any{"search_categories": map[string]any{"room_events": map[string]any{"search_term": 5}}}, 400, "M_BAD_JSON", "")
			bad(map[string]any{"search_categories": map[string]any{"people": map[string]any{"search_term": "x"}}}, 400, "M_INVALID_PARAM", "")
			bad(map[string]any{"search_categories": map[string]any{"room_events": map[string]any{"search_term": "x", "order_by": "size"}}}, 400, "M_INVALID_PARAM", "")
			bad(map[string]any{"search_categories": map[string]any{"room_events": map[string]any{"search_term": "x", "keys": []string{"content.url"}}}}, 400, "M_INVALID_PARAM", "")
			bad(map[string]any{"search_categories": map[string]any{"room_events": map[string]any{"search_term": "x",
				"groupings": map[string]any{"group_by": []any{map[string]any{"key": "type"}}}}}}, 400, "M_INVALID_PARAM", "")
			bad(map[string]any{"search_categories": map[string]any{"room_events": map[string]any{"search_term": "x"}}}, 400, "M_INVALID_PARAM", "?next_batch=garbage")
			bad("{not json", 400, "M_NOT_JSON", "")
			Anonymous(s).MustErr(t, 401, "M_MISSING_TOKEN", "POST", v3+"/search", map[string]any{})
		})
	})
}

func directorySearch(t *testing.T, c *Client, term string, limit int) ([]string, map[string]map[string]any, bool) {
	t.Helper()
	body := map[string]any{"search_term": term}
	if limit > 0 {
		body["limit"] = limit
	}
	r := c.Must(t, 200, "POST", v3+"/user_directory/search", body)
	var ids []string
	byID := map[string]map[string]any{}
	list, _ := r.Body["results"].([]any)
	for _, x := range list {
		u := x.(map[string]any)
		id := u["user_id"].(string)
		ids = append(ids, id)
		byID[id] = u
	}
	limited, ok := r.Body["limited"].(bool)
	if !ok {
		t.Fatalf("no limited flag: %s", r.Raw)
	}
	return ids, byID, limited
}

func setDisplayName(t *testing.T, c *Client, name string) {
	t.Helper()
	c.Must(t, 200, "PUT", v3+"/profile/"+esc(c.UserID)+"/displayname", map[string]any{"displayname": name})
}

func TestUserDirectoryAndMutualRooms(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		alice := Register(t, s, "alice", "correct horse battery")
		bob := Register(t, s, "bob.builder", "correct horse battery")
		stranger := Register(t, s, "stranger", "correct horse battery")
		public := Register(t, s, "publicperson", "correct horse battery")
		gone := Register(t, s, "gone", "correct horse battery")
		reader := Register(t, s, "reader", "correct horse battery")
		setDisplayName(t, bob, "Robert Mason")
		setDisplayName(t, stranger, "Robert Hidden")
		setDisplayName(t, public, "Robert Open")

		// alice and bob share a private room; the stranger is only in a private room of their own.
		shared := createRoom(t, alice, map[string]any{"preset": "private_chat", "invite": []string{bob.UserID}})
		bob.Must(t, 200, "POST", v3+"/join/"+esc(shared), map[string]any{})
		createRoom(t, stranger, map[string]any{"preset": "private_chat"})
		// publicperson is in a public room alice is not in.
		open := createRoom(t, public, map[string]any{"preset": "public_chat"})
		gone.Must(t, 200, "POST", v3+"/join/"+esc(open), map[string]any{})

		t.Run("by display name and localpart", func(t *testing.T) {
			ids, byID, _ := directorySearch(t, alice, "mason", 0)
			if !slices.Equal(ids, []string{bob.UserID}) || byID[bob.UserID]["display_name"] != "Robert Mason" {
				t.Errorf("search mason = %v %v", ids, byID)
			}
			if ids, _, _ := directorySearch(t, alice, "BUILD", 0); !slices.Equal(ids, []string{bob.UserID}) {
				t.Errorf("search by a word of the localpart = %v", ids)
			}
			if ids, _, _ := directorySearch(t, alice, "rob mas", 0); !slices.Equal(ids, []string{bob.UserID}) {
				t.Errorf("search by two word prefixes = %v", ids)
			}
		})

		t.Run("strangers are not found, members of public rooms are", func(t *testing.T) {
			ids, _, _ := directorySearch(t, alice, "robert", 0)
			if slices.Contains(ids, stranger.UserID) {
				t.Errorf("a user in no public room and no shared room was found: %v", ids)
			}
			if !slices.Contains(ids, public.UserID) || !slices.Contains(ids, bob.UserID) {
				t.Errorf("search robert = %v: want %s and %s", ids, bob.UserID, public.UserID)
			}
			// The room mate ranks before the member of a public room.
			if len(ids) < 2 || ids[0] != bob.UserID {
				t.Errorf("order %v: want %s first", ids, bob.UserID)
			}
			if ids, _, _ := directorySearch(t, alice, "hidden", 0); len(ids) != 0 {
				t.Errorf("stranger found by name: %v", ids)
			}
			ids, _, limited := directorySearch(t, alice, "robert", 1)
			if len(ids) != 1 || !limited {
				t.Errorf("limit 1: %v limited=%v", ids, limited)
			}
		})

		t.Run("members of a world readable room are found", func(t *testing.T) {
			if ids, _, _ := directorySearch(t, alice, "reader", 0); len(ids) != 0 {
				t.Fatalf("found before joining any room: %v", ids)
			}
			createRoom(t, reader, map[string]any{"preset": "private_chat", "initial_state": []any{map[string]any{
				"type": "m.room.history_visibility", "state_key": "", "content": map[string]any{"history_visibility": "world_readable"}}}})
			if ids, _, _ := directorySearch(t, alice, "reader", 0); !slices.Equal(ids, []string{reader.UserID}) {
				t.Errorf("member of a world readable room: %v", ids)
			}
		})

		t.Run("deactivated users are never found", func(t *testing.T) {
			if ids, _, _ := directorySearch(t, alice, "gone", 0); !slices.Equal(ids, []string{gone.UserID}) {
				t.Fatalf("before deactivation: %v", ids)
			}
			withPassword(t, gone, "POST", v3+"/account/deactivate", map[string]any{}, "correct horse battery")
			if ids, _, _ := directorySearch(t, alice, "gone", 0); len(ids) != 0 {
				t.Errorf("deactivated user found: %v", ids)
			}
		})

		t.Run("errors", func(t *testing.T) {
			alice.MustErr(t, 400, "M_BAD_JSON", "POST", v3+"/user_directory/search", map[string]any{})
			alice.MustErr(t, 400, "M_BAD_JSON", "POST", v3+"/user_directory/search", map[string]any{"search_term": 1})
			alice.MustErr(t, 400, "M_INVALID_PARAM", "POST", v3+"/user_directory/search", map[string]any{"search_term": "x", "limit": -1})
			Anonymous(s).MustErr(t, 401, "M_MISSING_TOKEN", "POST", v3+"/user_directory/search", map[string]any{"search_term": "x"})
		})

		t.Run("mutual rooms", func(t *testing.T) {
			const v1 = "/_matrix/client/v1"
			second := createRoom(t, alice, map[string]any{"preset": "public_chat"})
			bob.Must(t, 200, "POST", v3+"/join/"+esc(second), map[string]any{})
			r := alice.Must(t, 200, "GET", v1+"/mutual_rooms?user_id="+url.QueryEscape(bob.UserID), nil)
			joined, _ := r.Body["joined"].([]any)
			if len(joined) != 2 || !slices.Contains(joined, any(shared)) || !slices.Contains(joined, any(second)) || r.Body["count"] != float64(2) {
				t.Errorf("mutual rooms %s", r.Raw)
			}
			if _, ok := r.Body["next_batch"]; ok {
				t.Errorf("next_batch with everything returned: %s", r.Raw)
			}
			r = alice.Must(t, 200, "GET", v1+"/mutual_rooms?user_id="+url.QueryEscape(stranger.UserID), nil)
			if joined, _ := r.Body["joined"].([]any); len(joined) != 0 || r.Body["count"] != float64(0) {
				t.Errorf("mutual rooms with a stranger %s", r.Raw)
			}
			r = alice.Must(t, 200, "GET", v1+"/mutual_rooms?user_id="+url.QueryEscape("@nobody:"+hostOfUser(alice.UserID)), nil)
			if joined, _ := r.Body["joined"].([]any); len(joined) != 0 {
				t.Errorf("mutual rooms with an unknown user %s", r.Raw)
			}
			alice.MustErr(t, 400, "M_INVALID_PARAM", "GET", v1+"/mutual_rooms", nil)
			alice.MustErr(t, 400, "M_INVALID_PARAM", "GET", v1+"/mutual_rooms?user_id="+url.QueryEscape(alice.UserID), nil)
			alice.MustErr(t, 400, "M_INVALID_PARAM", "GET", v1+"/mutual_rooms?user_id=bob", nil)
			alice.MustErr(t, 400, "M_INVALID_PARAM", "GET", v1+"/mutual_rooms?user_id="+url.QueryEscape(bob.UserID)+"&from=%25%25", nil)
			Anonymous(s).MustErr(t, 401, "M_MISSING_TOKEN", "GET", v1+"/mutual_rooms?user_id="+url.QueryEscape(bob.UserID), nil)
		})
	})
}

func hostOfUser(userID string) string {
	for i := range userID {
		if userID[i] == ':' {
			return userID[i+1:]
		}
	}
	return ""
}
