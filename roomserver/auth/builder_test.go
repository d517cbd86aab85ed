package auth

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"myelin/roomserver/event"
)

// pdu is a test event as a JSON object: the builder fills what a case leaves out (room_id,
// depth, timestamps, prev/auth events, hashes, signatures, and event_id in v1/v2).
type pdu map[string]any

// Users of the test rooms. alice creates every room; bob is a moderator (50); mallory is a
// plain joined member; dave is invited; eve is banned; carol and zara have no membership.
const (
	alice   = "@alice:a.example"
	bob     = "@bob:b.example"
	mallory = "@mallory:b.example"
	dave    = "@dave:c.example"
	eve     = "@eve:c.example"
	carol   = "@carol:c.example"
	zara    = "@zara:z.example"
)

// testRoom builds events of one room version.
type testRoom struct {
	t      testing.TB
	v      event.RoomVersion
	roomID string
	create *event.Event
	n      int
}

func sp(s string) *string { return &s }

// newTestRoom creates the room with alice's m.room.create, with extra create content.
func newTestRoom(t testing.TB, versionID string, extra map[string]any) *testRoom {
	t.Helper()
	r := &testRoom{t: t, v: event.MustVersion(versionID)}
	content := map[string]any{"room_version": versionID}
	if !r.v.CreatorIsSender {
		content["creator"] = alice
	}
	for k, v := range extra {
		content[k] = v
	}
	if !r.v.RoomIDFromCreateEvent {
		r.roomID = "!room:a.example"
	}
	r.create = r.build(pdu{"type": TypeCreate, "sender": alice, "state_key": "", "content": content, "prev_events": []string{}})
	if r.v.RoomIDFromCreateEvent {
		r.roomID = "!" + strings.TrimPrefix(r.create.ID(), "$")
	}
	return r
}

// build turns a pdu into a parsed event of the room's version.
func (r *testRoom) build(p pdu) *event.Event {
	r.t.Helper()
	e, err := r.tryBuild(p)
	if err != nil {
		r.t.Fatalf("building %v: %v", p, err)
	}
	return e
}

func (r *testRoom) tryBuild(p pdu) (*event.Event, error) {
	r.n++
	m := map[string]any{}
	for k, v := range p {
		m[k] = v
	}
	sender, _ := m["sender"].(string)
	if _, ok := m["content"]; !ok {
		m["content"] = map[string]any{}
	}
	if _, ok := m["room_id"]; !ok && r.roomID != "" {
		m["room_id"] = r.roomID
	}
	if m["room_id"] == nil {
		delete(m, "room_id")
	}
	if _, ok := m["origin_server_ts"]; !ok {
		m["origin_server_ts"] = 1700000000000 + r.n
	}
	if _, ok := m["depth"]; !ok {
		m["depth"] = r.n
	}
	if _, ok := m["hashes"]; !ok {
		m["hashes"] = map[string]string{"sha256": "x6+9XxFzdQu0Z1Od7bG7Fhsz6UHUQpvxhzHPB5uLHFk"}
	}
	if _, ok := m["signatures"]; !ok {
		m["signatures"] = map[string]any{domain(sender): map[string]string{"ed25519:a": fakeSig}}
	}
	prev, ok := m["prev_events"].([]string)
	if !ok {
		prev = []string{r.fakeID("prev")}
	}
	auth, _ := m["auth_events"].([]string)
	if r.v.Format == event.FormatV1 {
		m["prev_events"], m["auth_events"] = v1Refs(prev), v1Refs(auth)
		if _, ok := m["event_id"]; !ok {
			m["event_id"] = fmt.Sprintf("$ev%d:%s", r.n, domain(sender))
		}
	} else {
		m["prev_events"], m["auth_events"] = prev, nonNil(auth)
	}
	if red, ok := m["redacts"]; ok && r.v.RedactsInContent {
		c := m["content"].(map[string]any)
		c["redacts"] = red
		delete(m, "redacts")
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return event.Parse(raw, r.v)
}

const fakeSig = "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw"

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func v1Refs(ids []string) [][]any {
	out := [][]any{}
	for _, id := range ids {
		out = append(out, []any{id, map[string]string{"sha256": "aGFzaA"}})
	}
	return out
}

// fakeID is an event id in the room's id format for events the test never builds.
func (r *testRoom) fakeID(name string) string {
	if r.v.Format == event.FormatV1 {
		return "$" + name + ":a.example"
	}
	return "$" + strings.Repeat("A", 43-len(name)) + name
}

// member builds an m.room.member event.
func (r *testRoom) member(sender, target, membership string, extra map[string]any) *event.Event {
	r.t.Helper()
	content := map[string]any{"membership": membership}
	for k, v := range extra {
		content[k] = v
	}
	return r.build(pdu{"type": TypeMember, "sender": sender, "state_key": target, "content": content})
}

// state builds a state event.
func (r *testRoom) state(typ, sender, stateKey string, content map[string]any) *event.Event {
	r.t.Helper()
	return r.build(pdu{"type": typ, "sender": sender, "state_key": stateKey, "content": content})
}

// defaultPowerLevels gives alice 100 (v1–v11; in v12 she is a creator and may not be listed),
// bob 50, and sets m.room.name to 50 and m.room.topic to 10.
func (r *testRoom) defaultPowerLevels() map[string]any {
	users := map[string]any{bob: 50}
	if !r.v.PrivilegedCreators {
		users[alice] = 100
	}
	return map[string]any{
		"users":          users,
		"users_default":  0,
		"events":         map[string]any{"m.room.name": 50, "m.room.topic": 10},
		"events_default": 0,
		"state_default":  50,
		"ban":            50,
		"kick":           50,
		"redact":         50,
		"invite":         0,
	}
}

// defaultState is the room after setup: create, power levels, a public join rule, and the
// memberships listed on the user constants.
func (r *testRoom) defaultState() StateMap {
	r.t.Helper()
	return NewStateMap(
		r.create,
		r.build(pdu{"type": TypeMember, "sender": alice, "state_key": alice, "content": map[string]any{"membership": "join"}, "prev_events": []string{r.create.ID()}}),
		r.state(TypePowerLevels, alice, "", r.defaultPowerLevels()),
		r.state(TypeJoinRules, alice, "", map[string]any{"join_rule": "public"}),
		r.member(bob, bob, "join", nil),
		r.member(mallory, mallory, "join", nil),
		r.member(alice, dave, "invite", nil),
		r.member(alice, eve, "ban", nil),
	)
}
