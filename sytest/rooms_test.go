package sytest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Black-box tests of the "Rooms and messages" endpoints: creating rooms, membership, sending,
// reading state and history, aliases and upgrades.

var txnCounter atomic.Int64

func esc(s string) string { return url.PathEscape(s) }

func createRoom(t *testing.T, c *Client, body map[string]any) string {
	t.Helper()
	r := c.Must(t, 200, "POST", v3+"/createRoom", body)
	id := r.Str("room_id")
	if !strings.HasPrefix(id, "!") {
		t.Fatalf("createRoom: %s", r.Raw)
	}
	return id
}

func sendText(t *testing.T, c *Client, roomID, text string) string {
	t.Helper()
	txn := fmt.Sprintf("txn%d", txnCounter.Add(1))
	r := c.Must(t, 200, "PUT", v3+"/rooms/"+esc(roomID)+"/send/m.room.message/"+txn,
		map[string]any{"msgtype": "m.text", "body": text})
	return r.Str("event_id")
}

func stateContent(t *testing.T, c *Client, roomID, typ, key string) map[string]any {
	t.Helper()
	return c.Must(t, 200, "GET", v3+"/rooms/"+esc(roomID)+"/state/"+typ+"/"+esc(key), nil).Body
}

// roomEvents returns the events of a list field of a reply.
func roomEvents(r Reply, field string) []map[string]any {
	list, _ := r.Body[field].([]any)
	out := make([]map[string]any, 0, len(list))
	for _, e := range list {
		out = append(out, e.(map[string]any))
	}
	return out
}

func msgBodies(evs []map[string]any) []string {
	var out []string
	for _, e := range evs {
		if e["type"] != "m.room.message" {
			continue
		}
		c, _ := e["content"].(map[string]any)
		out = append(out, fmt.Sprint(c["body"]))
	}
	return out
}

// getStateList reads GET /rooms/{roomId}/state, whose body is a JSON array.
func getStateList(t *testing.T, c *Client, roomID string, wantStatus int) []map[string]any {
	t.Helper()
	req, err := http.NewRequest("GET", c.Base+v3+"/rooms/"+esc(roomID)+"/state", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		t.Fatalf("GET state: %d, want %d: %s", resp.StatusCode, wantStatus, raw)
	}
	var out []map[string]any
	if wantStatus == 200 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("GET state: %v: %s", err, raw)
		}
	}
	return out
}

func messages(t *testing.T, c *Client, roomID, query string) Reply {
	t.Helper()
	return c.Must(t, 200, "GET", v3+"/rooms/"+esc(roomID)+"/messages?"+query, nil)
}

func TestRoomLifecycle(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		alice := Register(t, s, "alice", "alice password")
		bob := Register(t, s, "bob", "bob password")

		room := createRoom(t, alice, map[string]any{
			"preset": "public_chat", "room_alias_name": "pub", "name": "The Pub", "topic": "Drinks",
			"visibility": "public",
		})
		if n := stateContent(t, alice, room, "m.room.name", ""); n["name"] != "The Pub" {
			t.Errorf("name: %v", n)
		}
		if c := stateContent(t, alice, room, "m.room.canonical_alias", ""); c["alias"] != "#pub:localhost" {
			t.Errorf("canonical alias: %v", c)
		}
		if v := Anonymous(s).Must(t, 200, "GET", v3+"/directory/list/room/"+esc(room), nil); v.Str("visibility") != "public" {
			t.Errorf("directory visibility: %s", v.Raw)
		}
		// Public rooms are not encrypted by default.
		alice.MustErr(t, 404, "M_NOT_FOUND", "GET", v3+"/rooms/"+esc(room)+"/state/m.room.encryption/", nil)

		// Aliases resolve without a token; bob joins through one.
		res := Anonymous(s).Must(t, 200, "GET", v3+"/directory/room/"+esc("#pub:localhost"), nil)
		if res.Str("room_id") != room {
			t.Fatalf("alias: %s", res.Raw)
		}
		if r := bob.Must(t, 200, "POST", v3+"/join/"+esc("#pub:localhost"), map[string]any{}); r.Str("room_id") != room {
			t.Fatalf("join by alias: %s", r.Raw)
		}
		jr := bob.Must(t, 200, "GET", v3+"/joined_rooms", nil)
		if list, _ := jr.Body["joined_rooms"].([]any); len(list) != 1 || list[0] != room {
			t.Errorf("joined_rooms: %s", jr.Raw)
		}

		hello := sendText(t, alice, room, "hello bob")
		sendText(t, bob, room, "hello alice")
		ev := bob.Must(t, 200, "GET", v3+"/rooms/"+esc(room)+"/event/"+esc(hello), nil)
		if ev.Str("sender") != alice.UserID || ev.Str("room_id") != room || ev.Body["unsigned"] == nil {
			t.Errorf("event: %s", ev.Raw)
		}
		msgs := messages(t, bob, room, "dir=b&limit=2")
		if got := msgBodies(roomEvents(msgs, "chunk")); strings.Join(got, "|") != "hello alice|hello bob" {
			t.Errorf("messages: %v", got)
		}

		// members and joined_members
		jm := alice.Must(t, 200, "GET", v3+"/rooms/"+esc(room)+"/joined_members", nil)
		joined, _ := jm.Body["joined"].(map[string]any)
		if len(joined) != 2 || joined[alice.UserID] == nil || joined[bob.UserID] == nil {
			t.Errorf("joined_members: %s", jm.Raw)
		}
		mem := alice.Must(t, 200, "GET", v3+"/rooms/"+esc(room)+"/members?membership=join", nil)
		if len(roomEvents(mem, "chunk")) != 2 {
			t.Errorf("members: %s", mem.Raw)
		}

		// kick: bob may no longer talk, but may come back to a public room
		alice.Must(t, 200, "POST", v3+"/rooms/"+esc(room)+"/kick", map[string]any{"user_id": bob.UserID, "reason": "out"})
		bob.MustErr(t, 403, "M_FORBIDDEN", "PUT", v3+"/rooms/"+esc(room)+"/send/m.room.message/k1", map[string]any{"body": "x"})
		bob.Must(t, 200, "POST", v3+"/rooms/"+esc(room)+"/join", nil)
		// bob cannot kick or ban alice
		bob.MustErr(t, 403, "M_FORBIDDEN", "POST", v3+"/rooms/"+esc(room)+"/ban", map[string]any{"user_id": alice.UserID})
		// ban, and a banned user cannot join
		alice.Must(t, 200, "POST", v3+"/rooms/"+esc(room)+"/ban", map[string]any{"user_id": bob.UserID})
		bob.MustErr(t, 403, "M_FORBIDDEN", "POST", v3+"/rooms/"+esc(room)+"/join", nil)
		alice.Must(t, 200, "POST", v3+"/rooms/"+esc(room)+"/unban", map[string]any{"user_id": bob.UserID})
		if m := stateContent(t, alice, room, "m.room.member", bob.UserID); m["membership"] != "leave" {
			t.Errorf("after unban: %v", m)
		}
		bob.Must(t, 200, "POST", v3+"/join/"+esc(room), nil)

		// leave and forget
		bob.MustErr(t, 400, "M_UNKNOWN", "POST", v3+"/rooms/"+esc(room)+"/forget", nil)
		bob.Must(t, 200, "POST", v3+"/rooms/"+esc(room)+"/leave", map[string]any{})
		bob.Must(t, 200, "POST", v3+"/rooms/"+esc(room)+"/forget", nil)
		jr = bob.Must(t, 200, "GET", v3+"/joined_rooms", nil)
		if list, _ := jr.Body["joined_rooms"].([]any); len(list) != 0 {
			t.Errorf("joined_rooms after leaving: %s", jr.Raw)
		}

		// invite into a private room
		priv := createRoom(t, alice, map[string]any{"preset": "private_chat"})
		bob.MustErr(t, 403, "M_FORBIDDEN", "POST", v3+"/rooms/"+esc(priv)+"/join", nil)
		alice.Must(t, 200, "POST", v3+"/rooms/"+esc(priv)+"/invite", map[string]any{"user_id": bob.UserID})
		if m := stateContent(t, alice, priv, "m.room.member", bob.UserID); m["membership"] != "invite" {
			t.Errorf("invite: %v", m)
		}
		bob.Must(t, 200, "POST", v3+"/rooms/"+esc(priv)+"/join", nil)

		// knock on a room whose join rule allows it, then get let in
		knockRoom := createRoom(t, alice, map[string]any{"preset": "private_chat", "room_alias_name": "knockknock", "initial_state": []any{
			map[string]any{"type": "m.room.join_rules", "content": map[string]any{"join_rule": "knock"}},
		}})
		bob.MustErr(t, 403, "M_FORBIDDEN", "POST", v3+"/knock/"+esc(priv), map[string]any{})
		if r := bob.Must(t, 200, "POST", v3+"/knock/"+esc("#knockknock:localhost"), map[string]any{"reason": "let me in"}); r.Str("room_id") != knockRoom {
			t.Errorf("knock: %s", r.Raw)
		}
		if m := stateContent(t, alice, knockRoom, "m.room.member", bob.UserID); m["membership"] != "knock" || m["reason"] != "let me in" {
			t.Errorf("knock membership: %v", m)
		}
		alice.Must(t, 200, "POST", v3+"/rooms/"+esc(knockRoom)+"/invite", map[string]any{"user_id": bob.UserID})
		bob.Must(t, 200, "POST", v3+"/rooms/"+esc(knockRoom)+"/join", nil)

		// aliases: add, list, refuse duplicates, delete
		alice.Must(t, 200, "PUT", v3+"/directory/room/"+esc("#second:localhost"), map[string]any{"room_id": room})
		alice.MustErr(t, 409, "M_UNKNOWN", "PUT", v3+"/directory/room/"+esc("#second:localhost"), map[string]any{"room_id": room})
		alice.MustErr(t, 400, "M_INVALID_PARAM", "PUT", v3+"/directory/room/"+esc("#x:elsewhere"), map[string]any{"room_id": room})
		al := alice.Must(t, 200, "GET", v3+"/rooms/"+esc(room)+"/aliases", nil)
		if list, _ := al.Body["aliases"].([]any); len(list) != 2 {
			t.Errorf("aliases: %s", al.Raw)
		}
		bob.MustErr(t, 403, "M_FORBIDDEN", "GET", v3+"/rooms/"+esc(room)+"/aliases", nil)
		bob.MustErr(t, 403, "M_FORBIDDEN", "DELETE", v3+"/directory/room/"+esc("#second:localhost"), nil)
		alice.Must(t, 200, "DELETE", v3+"/directory/room/"+esc("#second:localhost"), nil)
		alice.MustErr(t, 404, "M_NOT_FOUND", "GET", v3+"/directory/room/"+esc("#second:localhost"), nil)

		// state: PUT with and without a state key, GET all, GET one with format=event
		alice.Must(t, 200, "PUT", v3+"/rooms/"+esc(room)+"/state/m.room.topic", map[string]any{"topic": "Food"})
		alice.Must(t, 200, "PUT", v3+"/rooms/"+esc(room)+"/state/org.example.thing/key%2Fwith%2Fslash", map[string]any{"a": 1})
		if c := stateContent(t, alice, room, "org.example.thing", "key/with/slash"); c["a"] != float64(1) {
			t.Errorf("state with a slash in its key: %v", c)
		}
		full := alice.Must(t, 200, "GET", v3+"/rooms/"+esc(room)+"/state/m.room.topic/?format=event", nil)
		if full.Str("type") != "m.room.topic" || full.Str("event_id") == "" {
			t.Errorf("format=event: %s", full.Raw)
		}
		if all := getStateList(t, alice, room, 200); len(all) < 8 {
			t.Errorf("state: %d events", len(all))
		}
		// Setting the same content again sends nothing new.
		again := alice.Must(t, 200, "PUT", v3+"/rooms/"+esc(room)+"/state/m.room.topic", map[string]any{"topic": "Food"})
		if again.Str("event_id") != full.Str("event_id") {
			t.Errorf("same state twice made a new event")
		}
		// canonical alias must point to the room
		alice.MustErr(t, 400, "M_BAD_ALIAS", "PUT", v3+"/rooms/"+esc(room)+"/state/m.room.canonical_alias", map[string]any{"alias": "#nope:localhost"})

		// redaction
		red := alice.Must(t, 200, "PUT", v3+"/rooms/"+esc(room)+"/redact/"+esc(hello)+"/r1", map[string]any{"reason": "oops"})
		if red.Str("event_id") == "" {
			t.Errorf("redact: %s", red.Raw)
		}
		red2 := alice.Must(t, 200, "PUT", v3+"/rooms/"+esc(room)+"/redact/"+esc(hello)+"/r1", map[string]any{"reason": "oops"})
		if red2.Str("event_id") != red.Str("event_id") {
			t.Errorf("redaction retry made a second redaction")
		}

		// upgrade: the alias follows, the old room gets a tombstone
		up := alice.Must(t, 200, "POST", v3+"/rooms/"+esc(room)+"/upgrade", map[string]any{"new_version": "11"})
		newRoom := up.Str("replacement_room")
		if newRoom == "" || newRoom == room {
			t.Fatalf("upgrade: %s", up.Raw)
		}
		if ts := stateContent(t, alice, room, "m.room.tombstone", ""); ts["replacement_room"] != newRoom {
			t.Errorf("tombstone: %v", ts)
		}
		if r := Anonymous(s).Must(t, 200, "GET", v3+"/directory/room/"+esc("#pub:localhost"), nil); r.Str("room_id") != newRoom {
			t.Errorf("alias after upgrade: %s", r.Raw)
		}
		if c := stateContent(t, alice, newRoom, "m.room.canonical_alias", ""); c["alias"] != "#pub:localhost" {
			t.Errorf("canonical alias after upgrade: %v", c)
		}
		alice.MustErr(t, 400, "M_UNSUPPORTED_ROOM_VERSION", "POST", v3+"/rooms/"+esc(newRoom)+"/upgrade", map[string]any{"new_version": "99"})
		bob.MustErr(t, 403, "M_FORBIDDEN", "POST", v3+"/rooms/"+esc(newRoom)+"/upgrade", map[string]any{"new_version": "12"})
	})
}

func TestCreateRoomOptions(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		alice := Register(t, s, "alice", "alice password")
		bob := Register(t, s, "bob", "bob password")

		for _, preset := range []string{"private_chat", "trusted_private_chat"} {
			room := createRoom(t, alice, map[string]any{"preset": preset, "invite": []string{bob.UserID}, "is_direct": true})
			if e := stateContent(t, alice, room, "m.room.encryption", ""); e["algorithm"] != "m.megolm.v1.aes-sha2" {
				t.Errorf("%s: not encrypted by default: %v", preset, e)
			}
			if j := stateContent(t, alice, room, "m.room.join_rules", ""); j["join_rule"] != "invite" {
				t.Errorf("%s: join rule %v", preset, j)
			}
			if m := stateContent(t, alice, room, "m.room.member", bob.UserID); m["membership"] != "invite" || m["is_direct"] != true {
				t.Errorf("%s: invite %v", preset, m)
			}
			if preset == "trusted_private_chat" {
				c := stateContent(t, alice, room, "m.room.create", "")
				if extra, _ := c["additional_creators"].([]any); len(extra) != 1 || extra[0] != bob.UserID {
					t.Errorf("trusted_private_chat: invitee is not an additional creator: %v", c)
				}
			}
		}
		// initial_state takes precedence over the preset; name over initial_state.
		room := createRoom(t, alice, map[string]any{
			"preset":           "public_chat",
			"room_version":     "10",
			"name":             "Named",
			"creation_content": map[string]any{"m.federate": false},
			"initial_state": []any{
				map[string]any{"type": "m.room.history_visibility", "content": map[string]any{"history_visibility": "joined"}},
				map[string]any{"type": "m.room.name", "content": map[string]any{"name": "Overridden"}},
			},
			"power_level_content_override": map[string]any{"events_default": 10},
		})
		if h := stateContent(t, alice, room, "m.room.history_visibility", ""); h["history_visibility"] != "joined" {
			t.Errorf("initial_state: %v", h)
		}
		if n := stateContent(t, alice, room, "m.room.name", ""); n["name"] != "Named" {
			t.Errorf("name: %v", n)
		}
		c := stateContent(t, alice, room, "m.room.create", "")
		if c["room_version"] != "10" || c["m.federate"] != false || c["creator"] != alice.UserID {
			t.Errorf("create: %v", c)
		}
		if pl := stateContent(t, alice, room, "m.room.power_levels", ""); pl["events_default"] != float64(10) {
			t.Errorf("power levels: %v", pl)
		}

		// errors
		createRoom(t, alice, map[string]any{"room_alias_name": "taken"})
		alice.MustErr(t, 400, "M_ROOM_IN_USE", "POST", v3+"/createRoom", map[string]any{"room_alias_name": "taken"})
		alice.MustErr(t, 400, "M_UNSUPPORTED_ROOM_VERSION", "POST", v3+"/createRoom", map[string]any{"room_version": "1000"})
		alice.MustErr(t, 400, "M_INVALID_ROOM_STATE", "POST", v3+"/createRoom", map[string]any{
			"room_version": "10", "room_alias_name": "refused", "name": "needs power",
			"power_level_content_override": map[string]any{"users": map[string]any{alice.UserID: 0}},
		})
		// The refused room left no alias behind.
		createRoom(t, alice, map[string]any{"room_alias_name": "refused"})
		alice.MustErr(t, 400, "M_INVALID_PARAM", "POST", v3+"/createRoom", map[string]any{
			"invite_3pid": []any{map[string]any{"id_server": "x", "id_access_token": "y", "medium": "email", "address": "a@b"}},
		})
		alice.MustErr(t, 400, "M_INVALID_PARAM", "POST", v3+"/createRoom", map[string]any{"invite": []string{"not-a-user"}})
		alice.MustErr(t, 400, "M_INVALID_PARAM", "POST", v3+"/createRoom", map[string]any{"preset": "party"})
		alice.MustErr(t, 400, "M_NOT_JSON", "POST", v3+"/createRoom", "{nope")
		alice.MustErr(t, 400, "M_BAD_JSON", "POST", v3+"/createRoom", map[string]any{"name": 5})
		alice.MustErr(t, 400, "M_BAD_JSON", "POST", v3+"/createRoom", map[string]any{"creation_content": []int{1}})
		alice.MustErr(t, 400, "M_INVALID_ROOM_STATE", "POST", v3+"/createRoom", map[string]any{
			"initial_state": []any{map[string]any{"type": "m.room.member", "state_key": bob.UserID, "content": map[string]any{"membership": "join"}}},
		})
		Anonymous(s).MustErr(t, 401, "M_MISSING_TOKEN", "POST", v3+"/createRoom", map[string]any{})
	})
}

func TestSendIdempotent(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		alice := Register(t, s, "alice", "alice password")
		other, _ := Login(t, s, "alice", "alice password", nil)
		room := createRoom(t, alice, map[string]any{"preset": "private_chat"})
		path := v3 + "/rooms/" + esc(room) + "/send/m.room.message/same-txn"

		first := alice.Must(t, 200, "PUT", path, map[string]any{"msgtype": "m.text", "body": "one"})
		again := alice.Must(t, 200, "PUT", path, map[string]any{"msgtype": "m.text", "body": "one"})
		changed := alice.Must(t, 200, "PUT", path, map[string]any{"msgtype": "m.text", "body": "two"})
		if first.Str("event_id") == "" || again.Str("event_id") != first.Str("event_id") || changed.Str("event_id") != first.Str("event_id") {
			t.Errorf("retries: %s %s %s", first.Raw, again.Raw, changed.Raw)
		}
		// Another device, or another event type, is another transaction.
		if r := other.Must(t, 200, "PUT", path, map[string]any{"body": "one"}); r.Str("event_id") == first.Str("event_id") {
			t.Errorf("another device's transaction was taken as a retry")
		}
		if r := alice.Must(t, 200, "PUT", v3+"/rooms/"+esc(room)+"/send/org.example/same-txn", map[string]any{}); r.Str("event_id") == first.Str("event_id") {
			t.Errorf("another endpoint's transaction was taken as a retry")
		}
		msgs := messages(t, alice, room, "dir=b&limit=10")
		if got := msgBodies(roomEvents(msgs, "chunk")); len(got) != 2 {
			t.Errorf("messages after retries: %v", got)
		}
		// Ten sends at once, committed together by the room server, one of them a retry: the
		// retry still answers with the first event and fails none of the others.
		ids := make(chan string, 10)
		var wg sync.WaitGroup
		for i := range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := path
				if i > 0 {
					p = v3 + "/rooms/" + esc(room) + "/send/m.room.message/burst-" + fmt.Sprint(i)
				}
				r := alice.Must(t, 200, "PUT", p, map[string]any{"msgtype": "m.text", "body": "burst"})
				ids <- r.Str("event_id")
			}()
		}
		wg.Wait()
		close(ids)
		seen := map[string]bool{}
		for id := range ids {
			seen[id] = true
		}
		if len(seen) != 10 || !seen[first.Str("event_id")] {
			t.Errorf("burst with a retry: %d distinct ids, first among them: %v", len(seen), seen[first.Str("event_id")])
		}
		// The sending device sees its transaction id; others do not.
		mine := alice.Must(t, 200, "GET", v3+"/rooms/"+esc(room)+"/event/"+esc(first.Str("event_id")), nil)
		if u, _ := mine.Body["unsigned"].(map[string]any); u["transaction_id"] != "same-txn" {
			t.Errorf("own echo: %s", mine.Raw)
		}
		theirs := other.Must(t, 200, "GET", v3+"/rooms/"+esc(room)+"/event/"+esc(first.Str("event_id")), nil)
		if u, _ := theirs.Body["unsigned"].(map[string]any); u["transaction_id"] != nil {
			t.Errorf("other device sees the transaction id: %s", theirs.Raw)
		}
		// A retry after the sender left the room still gets the first answer.
		alice.Must(t, 200, "POST", v3+"/rooms/"+esc(room)+"/leave", map[string]any{})
		if r := alice.Must(t, 200, "PUT", path, map[string]any{"msgtype": "m.text", "body": "one"}); r.Str("event_id") != first.Str("event_id") {
			t.Errorf("retry after leaving: %s", r.Raw)
		}
	})
}

func TestMessagesAndContext(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		alice := Register(t, s, "alice", "alice password")
		room := createRoom(t, alice, map[string]any{"preset": "private_chat"})
		var ids []string
		for i := range 12 {
			ids = append(ids, sendText(t, alice, room, fmt.Sprint(i)))
		}
		filter := url.QueryEscape(`{"types":["m.room.message"]}`)

		// Backwards in pages of 5: 11..7, 6..2, 1 0 and no end.
		var got []string
		from := ""
		for range 3 {
			q := "dir=b&limit=5&filter=" + filter
			if from != "" {
				q += "&from=" + url.QueryEscape(from)
			}
			r := messages(t, alice, room, q)
			got = append(got, msgBodies(roomEvents(r, "chunk"))...)
			if r.Str("start") == "" {
				t.Errorf("no start: %s", r.Raw)
			}
			from = r.Str("end")
			// Pages are topological: their tokens carry a depth.
			if from != "" && !strings.HasPrefix(from, "t") {
				t.Errorf("end token %q is not topological", from)
			}
		}
		if strings.Join(got, ",") != "11,10,9,8,7,6,5,4,3,2,1,0" {
			t.Errorf("backwards: %v", got)
		}
		if from != "" {
			t.Errorf("end at the start of the room: %q", from)
		}

		// Forwards from the beginning, then on from the end token.
		r := messages(t, alice, room, "dir=f&limit=4&filter="+filter)
		if g := msgBodies(roomEvents(r, "chunk")); strings.Join(g, ",") != "0,1,2,3" {
			t.Errorf("forwards: %v", g)
		}
		r = messages(t, alice, room, "dir=f&limit=4&filter="+filter+"&from="+url.QueryEscape(r.Str("end")))
		if g := msgBodies(roomEvents(r, "chunk")); strings.Join(g, ",") != "4,5,6,7" {
			t.Errorf("forwards, second page: %v", g)
		}
		// Without a filter the room's state events come first.
		r = messages(t, alice, room, "dir=f&limit=1")
		if c := roomEvents(r, "chunk"); len(c) != 1 || c[0]["type"] != "m.room.create" {
			t.Errorf("first event: %s", r.Raw)
		}
		// not_types and senders
		r = messages(t, alice, room, "dir=b&limit=50&filter="+url.QueryEscape(`{"not_types":["m.room.message"]}`))
		for _, e := range roomEvents(r, "chunk") {
			if e["type"] == "m.room.message" {
				t.Errorf("not_types let a message through")
			}
		}
		r = messages(t, alice, room, "dir=b&limit=50&filter="+url.QueryEscape(`{"senders":["@nobody:localhost"]}`))
		if len(roomEvents(r, "chunk")) != 0 {
			t.Errorf("senders filter: %s", r.Raw)
		}
		// lazy_load_members returns the senders' membership
		r = messages(t, alice, room, "dir=b&limit=2&filter="+url.QueryEscape(`{"lazy_load_members":true}`))
		if st := roomEvents(r, "state"); len(st) != 1 || st[0]["state_key"] != alice.UserID {
			t.Errorf("lazy-loaded members: %s", r.Raw)
		}
		// The device has alice's membership now: it is left out, unless redundant members
		// are asked for.
		r = messages(t, alice, room, "dir=b&limit=2&filter="+url.QueryEscape(`{"lazy_load_members":true}`))
		if st := roomEvents(r, "state"); len(st) != 0 {
			t.Errorf("lazy-loaded members sent twice: %s", r.Raw)
		}
		r = messages(t, alice, room, "dir=b&limit=2&filter="+url.QueryEscape(`{"lazy_load_members":true,"include_redundant_members":true}`))
		if st := roomEvents(r, "state"); len(st) != 1 || st[0]["state_key"] != alice.UserID {
			t.Errorf("include_redundant_members: %s", r.Raw)
		}

		// context around message 6 with 4 around it
		ctx := alice.Must(t, 200, "GET", v3+"/rooms/"+esc(room)+"/context/"+esc(ids[6])+"?limit=4", nil)
		ev, _ := ctx.Body["event"].(map[string]any)
		if ev["event_id"] != ids[6] {
			t.Errorf("context event: %s", ctx.Raw)
		}
		if b := msgBodies(roomEvents(ctx, "events_before")); strings.Join(b, ",") != "5,4" {
			t.Errorf("events_before: %v", b)
		}
		if a := msgBodies(roomEvents(ctx, "events_after")); strings.Join(a, ",") != "7,8" {
			t.Errorf("events_after: %v", a)
		}
		if len(roomEvents(ctx, "state")) == 0 || ctx.Str("start") == "" || ctx.Str("end") == "" {
			t.Errorf("context state and tokens: %s", ctx.Raw)
		}
		// the context's tokens continue where it stopped
		r = messages(t, alice, room, "dir=b&limit=2&filter="+filter+"&from="+url.QueryEscape(ctx.Str("start")))
		if g := msgBodies(roomEvents(r, "chunk")); strings.Join(g, ",") != "3,2" {
			t.Errorf("from the context's start: %v", g)
		}
		r = messages(t, alice, room, "dir=f&limit=2&filter="+filter+"&from="+url.QueryEscape(ctx.Str("end")))
		if g := msgBodies(roomEvents(r, "chunk")); strings.Join(g, ",") != "9,10" {
			t.Errorf("from the context's end: %v", g)
		}

		// timestamp_to_event
		first := alice.Must(t, 200, "GET", v3+"/rooms/"+esc(room)+"/event/"+esc(ids[0]), nil)
		ts := int64(first.Body["origin_server_ts"].(float64))
		te := alice.Must(t, 200, "GET", fmt.Sprintf("/_matrix/client/v1/rooms/%s/timestamp_to_event?dir=b&ts=%d", esc(room), ts+3600_000), nil)
		if te.Str("event_id") == "" {
			t.Errorf("timestamp_to_event: %s", te.Raw)
		}
		alice.MustErr(t, 404, "M_NOT_FOUND", "GET", fmt.Sprintf("/_matrix/client/v1/rooms/%s/timestamp_to_event?dir=f&ts=%d", esc(room), ts+3600_000), nil)
		alice.MustErr(t, 400, "M_INVALID_PARAM", "GET", fmt.Sprintf("/_matrix/client/v1/rooms/%s/timestamp_to_event?dir=x&ts=1", esc(room)), nil)
	})
}

// TestHistoryVisibility: what a user who joins later, or who left, may read.
func TestHistoryVisibility(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		alice := Register(t, s, "alice", "alice password")
		bob := Register(t, s, "bob", "bob password")
		eve := Register(t, s, "eve", "eve password")

		cases := []struct {
			visibility string
			seesBefore bool // does bob, joining later, see the message sent before his invite
		}{
			{"shared", true},
			{"invited", false},
			{"joined", false},
			{"world_readable", true},
		}
		for _, tc := range cases {
			t.Run(tc.visibility, func(t *testing.T) {
				room := createRoom(t, alice, map[string]any{"preset": "private_chat", "initial_state": []any{
					map[string]any{"type": "m.room.history_visibility", "content": map[string]any{"history_visibility": tc.visibility}},
				}})
				early := sendText(t, alice, room, "before")
				// Not a member: forbidden, unless the room is world readable.
				if tc.visibility == "world_readable" {
					r := messages(t, eve, room, "dir=b")
					if g := msgBodies(roomEvents(r, "chunk")); len(g) != 1 {
						t.Errorf("world readable to a non-member: %v", g)
					}
				} else {
					eve.MustErr(t, 403, "M_FORBIDDEN", "GET", v3+"/rooms/"+esc(room)+"/messages?dir=b", nil)
					getStateList(t, eve, room, 403)
					eve.MustErr(t, 403, "M_FORBIDDEN", "GET", v3+"/rooms/"+esc(room)+"/members", nil)
				}
				alice.Must(t, 200, "POST", v3+"/rooms/"+esc(room)+"/invite", map[string]any{"user_id": bob.UserID})
				sendText(t, alice, room, "invited")
				bob.Must(t, 200, "POST", v3+"/rooms/"+esc(room)+"/join", nil)
				sendText(t, alice, room, "joined")

				got := strings.Join(msgBodies(roomEvents(messages(t, bob, room, "dir=f&limit=50"), "chunk")), ",")
				want := map[string]string{
					"shared": "before,invited,joined", "invited": "invited,joined",
					"joined": "joined", "world_readable": "before,invited,joined",
				}[tc.visibility]
				if got != want {
					t.Errorf("bob sees %q, want %q", got, want)
				}
				r := bob.Do(t, "GET", v3+"/rooms/"+esc(room)+"/event/"+esc(early), nil)
				if (r.Status == 200) != tc.seesBefore {
					t.Errorf("GET event before joining: %d", r.Status)
				}

				// After leaving, bob sees nothing new.
				bob.Must(t, 200, "POST", v3+"/rooms/"+esc(room)+"/leave", nil)
				after := sendText(t, alice, room, "after")
				alice.Must(t, 200, "PUT", v3+"/rooms/"+esc(room)+"/state/m.room.topic", map[string]any{"topic": "later"})
				got = strings.Join(msgBodies(roomEvents(messages(t, bob, room, "dir=b&limit=50"), "chunk")), ",")
				if strings.Contains(got, "after") && tc.visibility != "world_readable" {
					t.Errorf("bob sees a message after he left: %q", got)
				}
				if tc.visibility != "world_readable" {
					bob.MustErr(t, 404, "M_NOT_FOUND", "GET", v3+"/rooms/"+esc(room)+"/event/"+esc(after), nil)
					// his view of the state stops when he left
					for _, ev := range getStateList(t, bob, room, 200) {
						if ev["type"] == "m.room.topic" {
							t.Errorf("bob sees state set after he left")
						}
					}
					bob.MustErr(t, 403, "M_FORBIDDEN", "GET", v3+"/rooms/"+esc(room)+"/joined_members", nil)
				}
			})
		}
	})
}

func TestRoomBadInput(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		alice := Register(t, s, "alice", "alice password")
		bob := Register(t, s, "bob", "bob password")
		room := createRoom(t, alice, map[string]any{"preset": "private_chat"})
		send := v3 + "/rooms/" + esc(room) + "/send/m.room.message/"

		alice.MustErr(t, 400, "M_NOT_JSON", "PUT", send+"b1", "{not json")
		alice.MustErr(t, 400, "M_BAD_JSON", "PUT", send+"b2", `["an", "array"]`)
		alice.MustErr(t, 400, "M_BAD_JSON", "PUT", send+"b3", `{"float": 1.5}`)
		alice.MustErr(t, 413, "M_TOO_LARGE", "PUT", send+"b4", map[string]any{"body": strings.Repeat("x", 70000)})
		alice.MustErr(t, 413, "M_TOO_LARGE", "PUT", send+"b5", map[string]any{"body": strings.Repeat("x", 65000)})
		alice.MustErr(t, 400, "M_INVALID_PARAM", "PUT", v3+"/rooms/not-a-room/send/m.room.message/b6", map[string]any{})
		alice.MustErr(t, 404, "M_NOT_FOUND", "PUT", v3+"/rooms/"+esc("!unknown:localhost")+"/send/m.room.message/b7", map[string]any{})
		alice.MustErr(t, 400, "M_INVALID_PARAM", "PUT", v3+"/rooms/"+esc(room)+"/send/m.room.create/b8", map[string]any{})
		bob.MustErr(t, 403, "M_FORBIDDEN", "PUT", send+"b9", map[string]any{"body": "not a member"})
		bob.MustErr(t, 403, "M_FORBIDDEN", "GET", v3+"/rooms/"+esc(room)+"/messages?dir=b", nil)
		alice.MustErr(t, 404, "M_NOT_FOUND", "GET", v3+"/rooms/"+esc("!unknown:localhost")+"/messages?dir=b", nil)
		alice.MustErr(t, 400, "M_MISSING_PARAM", "GET", v3+"/rooms/"+esc(room)+"/messages", nil)
		alice.MustErr(t, 400, "M_INVALID_PARAM", "GET", v3+"/rooms/"+esc(room)+"/messages?dir=up", nil)
		alice.MustErr(t, 400, "M_INVALID_PARAM", "GET", v3+"/rooms/"+esc(room)+"/messages?dir=b&from=garbage", nil)
		alice.MustErr(t, 400, "M_INVALID_PARAM", "GET", v3+"/rooms/"+esc(room)+"/messages?dir=b&limit=-1", nil)
		alice.MustErr(t, 400, "M_NOT_JSON", "GET", v3+"/rooms/"+esc(room)+"/messages?dir=b&filter="+url.QueryEscape("{bad"), nil)
		alice.MustErr(t, 404, "M_NOT_FOUND", "GET", v3+"/rooms/"+esc(room)+"/event/"+esc("$nope"), nil)
		alice.MustErr(t, 404, "M_NOT_FOUND", "GET", v3+"/rooms/"+esc(room)+"/context/"+esc("$nope"), nil)
		alice.MustErr(t, 404, "M_NOT_FOUND", "GET", v3+"/rooms/"+esc(room)+"/state/m.room.nothing/", nil)
		alice.MustErr(t, 400, "M_MISSING_PARAM", "POST", v3+"/rooms/"+esc(room)+"/invite", map[string]any{})
		alice.MustErr(t, 400, "M_INVALID_PARAM", "POST", v3+"/rooms/"+esc(room)+"/invite", map[string]any{"user_id": "bob"})
		alice.MustErr(t, 400, "M_INVALID_PARAM", "POST", v3+"/rooms/"+esc(room)+"/invite",
			map[string]any{"id_server": "id.example", "medium": "email", "address": "bob@example.org"})
		// A room on an unreachable server fails at once with a clear error; bad via names are refused.
		alice.MustErr(t, 502, "M_UNKNOWN", "POST", v3+"/join/"+esc("!elsewhere:remote.example")+"?server_name=remote.example", nil)
		alice.MustErr(t, 400, "M_INVALID_PARAM", "POST", v3+"/join/"+esc("!elsewhere:remote.example")+"?via=bad%20name", nil)
		alice.MustErr(t, 404, "M_NOT_FOUND", "POST", v3+"/join/"+esc("#room:remote.example"), nil)
		alice.MustErr(t, 400, "M_INVALID_PARAM", "POST", v3+"/join/nonsense", nil)
		// Nothing of the refused requests reached the room.
		r := messages(t, alice, room, "dir=b&limit=50&filter="+url.QueryEscape(`{"types":["m.room.message"]}`))
		if n := len(roomEvents(r, "chunk")); n != 0 {
			t.Errorf("refused sends left %d messages", n)
		}
		// Sending into a room one left is refused.
		alice.Must(t, 200, "POST", v3+"/rooms/"+esc(room)+"/leave", nil)
		alice.MustErr(t, 403, "M_FORBIDDEN", "PUT", send+"b10", map[string]any{"body": "gone"})
	})
}

// The reason given to /join and /leave travels into the membership event's content.
func TestMembershipReasons(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		alice := Register(t, s, "alice", "alice password")
		bob := Register(t, s, "bob", "bob password")
		room := createRoom(t, alice, map[string]any{"preset": "public_chat"})

		bob.Must(t, 200, "POST", v3+"/rooms/"+esc(room)+"/join", map[string]any{"reason": "said hi"})
		if m := stateContent(t, alice, room, "m.room.member", bob.UserID); m["membership"] != "join" || m["reason"] != "said hi" {
			t.Errorf("join: %v", m)
		}
		bob.Must(t, 200, "POST", v3+"/rooms/"+esc(room)+"/leave", map[string]any{"reason": "said bye"})
		if m := stateContent(t, alice, room, "m.room.member", bob.UserID); m["membership"] != "leave" || m["reason"] != "said bye" {
			t.Errorf("leave: %v", m)
		}
		bob.Must(t, 200, "POST", v3+"/join/"+esc(room), map[string]any{})
		if m := stateContent(t, alice, room, "m.room.member", bob.UserID); m["membership"] != "join" || m["reason"] != nil {
			t.Errorf("join without reason: %v", m)
		}
	})
}
