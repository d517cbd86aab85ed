package stateres

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"myelin/roomserver/auth"
	"myelin/roomserver/event"
)

// memLoader is a Loader over events in memory, without an auth chain index.
type memLoader struct {
	events   map[string]*event.Event
	rejected map[string]bool
	calls    int
}

func newMemLoader() *memLoader {
	return &memLoader{events: map[string]*event.Event{}, rejected: map[string]bool{}}
}

func (l *memLoader) Events(ids []string) (map[string]*event.Event, error) {
	l.calls++
	out := make(map[string]*event.Event, len(ids))
	for _, id := range ids {
		if e, ok := l.events[id]; ok {
			out[id] = e
		}
	}
	return out, nil
}

func (l *memLoader) AuthChain(ids []string) (map[string]struct{}, error) {
	return WalkAuthChain(l.Events, ids)
}

func (l *memLoader) Rejected(ids []string) (map[string]struct{}, error) {
	out := map[string]struct{}{}
	for _, id := range ids {
		if l.rejected[id] {
			out[id] = struct{}{}
		}
	}
	return out, nil
}

// Users of the test rooms, as in Synapse's state resolution tests.
const (
	alice   = "@alice:example.com"
	bob     = "@bob:example.com"
	charlie = "@charlie:example.com"
	evelyn  = "@evelyn:example.com"
	zara    = "@zara:example.com"
)

func sp(s string) *string { return &s }

// testRoom builds the events of one room of one version and keeps them in a memLoader. Events
// are named; names map to event ids, which from room version 3 on are reference hashes.
type testRoom struct {
	t      testing.TB
	v      event.RoomVersion
	roomID string
	l      *memLoader
	ids    map[string]string // name -> event id
	names  map[string]string // event id -> name
	ts     int64
}

func newTestRoom(t testing.TB, versionID string) *testRoom {
	r := &testRoom{t: t, v: event.MustVersion(versionID), l: newMemLoader(), ids: map[string]string{}, names: map[string]string{}}
	if !r.v.RoomIDFromCreateEvent {
		r.roomID = "!test:example.com"
	}
	return r
}

// pdu describes a test event. Prev and Auth name events of the room.
type pdu struct {
	Name     string
	Sender   string
	Type     string
	StateKey *string
	Content  map[string]any
	Prev     []string
	Auth     []string
	Depth    int64
	TS       int64 // 0: one more than the previous event's
}

func (r *testRoom) add(p pdu) *event.Event {
	r.t.Helper()
	if _, dup := r.ids[p.Name]; dup {
		r.t.Fatalf("event %s added twice", p.Name)
	}
	if p.TS == 0 {
		r.ts++
		p.TS = r.ts
	}
	m := map[string]any{
		"type":             p.Type,
		"sender":           p.Sender,
		"content":          p.Content,
		"origin_server_ts": p.TS,
		"depth":            p.Depth,
		"hashes":           map[string]string{"sha256": "x6+9XxFzdQu0Z1Od7bG7Fhsz6UHUQpvxhzHPB5uLHFk"},
		"signatures": map[string]any{"example.com": map[string]string{
			"ed25519:a": "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw"}},
	}
	if p.Content == nil {
		m["content"] = map[string]any{}
	}
	if p.StateKey != nil {
		m["state_key"] = *p.StateKey
	}
	isCreate := p.Type == auth.TypeCreate
	if !(isCreate && r.v.RoomIDFromCreateEvent) {
		m["room_id"] = r.roomID
	}
	prev, authIDs := r.resolveNames(p.Prev), r.resolveNames(p.Auth)
	if r.v.Format == event.FormatV1 {
		m["event_id"] = "$" + p.Name + ":example.com"
		m["prev_events"], m["auth_events"] = refs(prev), refs(authIDs)
	} else {
		m["prev_events"], m["auth_events"] = prev, authIDs
	}
	raw, err := json.Marshal(m)
	if err != nil {
		r.t.Fatal(err)
	}
	e, err := event.Parse(raw, r.v)
	if err != nil {
		r.t.Fatalf("parsing %s: %v", p.Name, err)
	}
	if isCreate && r.v.RoomIDFromCreateEvent {
		r.roomID = "!" + strings.TrimPrefix(e.ID(), "$")
	}
	r.ids[p.Name] = e.ID()
	r.names[e.ID()] = p.Name
	r.l.events[e.ID()] = e
	return e
}

func (r *testRoom) resolveNames(names []string) []string {
	r.t.Helper()
	out := []string{}
	for _, n := range names {
		id, ok := r.ids[n]
		if !ok {
			r.t.Fatalf("unknown event %s", n)
		}
		out = append(out, id)
	}
	return out
}

func refs(ids []string) [][]any {
	out := [][]any{}
	for _, id := range ids {
		out = append(out, []any{id, map[string]string{"sha256": "aGFzaA"}})
	}
	return out
}

func (r *testRoom) event(name string) *event.Event {
	r.t.Helper()
	e, ok := r.l.events[r.ids[name]]
	if !ok {
		r.t.Fatalf("unknown event %s", name)
	}
	return e
}

// state is a StateMap of named events.
func (r *testRoom) state(names ...string) StateMap {
	r.t.Helper()
	s := StateMap{}
	for _, n := range names {
		e := r.event(n)
		t, ok := e.Tuple()
		if !ok {
			r.t.Fatalf("%s is not a state event", n)
		}
		s[t] = e.ID()
	}
	return s
}

// show renders a state with event names, for failure messages.
func (r *testRoom) show(s StateMap) string {
	var parts []string
	for k, id := range s {
		name := r.names[id]
		if name == "" {
			name = id
		}
		parts = append(parts, fmt.Sprintf("%s/%s=%s", k.Type, k.StateKey, name))
	}
	slices.Sort(parts)
	return "{" + strings.Join(parts, " ") + "}"
}

func (r *testRoom) resolve(sets ...StateMap) (StateMap, error) {
	return Resolve(r.v, sets, r.l, auth.Check)
}

// A node of a test DAG, as in Synapse's tests: auth events, depth and timestamps are filled in
// when the DAG is built.
type node struct {
	name, sender, typ string
	stateKey          *string
	content           map[string]any
}

func stateNode(name, sender, typ, stateKey string, content map[string]any) node {
	return node{name, sender, typ, sp(stateKey), content}
}

func member(name, sender, target, membership string) node {
	return stateNode(name, sender, "m.room.member", target, map[string]any{"membership": membership})
}

func pl(name, sender string, users map[string]any) node {
	return stateNode(name, sender, "m.room.power_levels", "", map[string]any{"users": users})
}

func topic(name, sender string) node {
	return stateNode(name, sender, "m.room.topic", "", map[string]any{})
}

func message(name, sender string) node {
	return node{name: name, sender: sender, typ: "m.room.message", content: map[string]any{}}
}

// initialNodes start every DAG: a public room where alice has 100 and bob, charlie, zara joined.
func initialNodes(v event.RoomVersion) []node {
	create := map[string]any{}
	if !v.CreatorIsSender {
		create["creator"] = alice
	}
	ipower := map[string]any{alice: 100}
	if v.PrivilegedCreators {
		ipower = map[string]any{} // the creator has infinite power and may not be listed
	}
	return []node{
		stateNode("CREATE", alice, "m.room.create", "", create),
		member("IMA", alice, alice, "join"),
		pl("IPOWER", alice, ipower),
		stateNode("IJR", alice, "m.room.join_rules", "", map[string]any{"join_rule": "public"}),
		member("IMB", bob, bob, "join"),
		member("IMC", charlie, charlie, "join"),
		member("IMZ", zara, zara, "join"),
		message("START", zara),
		message("END", zara),
	}
}

var initialEdges = []string{"START", "IMZ", "IMC", "IMB", "IJR", "IPOWER", "IMA", "CREATE"}

// dag is a room built from nodes and chains of edges, with the state after every node.
type dag struct {
	*testRoom
	stateAfter map[string]StateMap
}

// buildDAG creates the events in topological order (ties by name), each with the auth events the
// auth events selection picks from the state before it, that state being the resolution of the
// states after its prev events.
func buildDAG(t testing.TB, versionID string, nodes []node, edges [][]string) *dag {
	t.Helper()
	d := &dag{testRoom: newTestRoom(t, versionID), stateAfter: map[string]StateMap{}}
	all := append(initialNodes(d.v), nodes...)
	byName := map[string]node{}
	prevs := map[string]map[string]bool{}
	for _, n := range all {
		byName[n.name] = n
		prevs[n.name] = map[string]bool{}
	}
	for _, chain := range append([][]string{initialEdges}, edges...) {
		for i := 0; i+1 < len(chain); i++ {
			prevs[chain[i]][chain[i+1]] = true
		}
	}
	depth := map[string]int64{}
	for _, name := range topoByName(prevs) {
		n := byName[name]
		prev := slices.Sorted(maps.Keys(prevs[name]))
		var before StateMap
		switch len(prev) {
		case 0:
			before = StateMap{}
		case 1:
			before = maps.Clone(d.stateAfter[prev[0]])
		default:
			var sets []StateMap
			for _, p := range prev {
				sets = append(sets, d.stateAfter[p])
			}
			var err error
			if before, err = d.resolve(sets...); err != nil {
				t.Fatalf("state before %s: %v", name, err)
			}
		}
		var authNames []string
		sk := ""
		if n.stateKey != nil {
			sk = *n.stateKey
		}
		raw, _ := json.Marshal(n.content)
		for _, k := range auth.StateNeededForAuth(n.typ, sk, n.sender, raw, d.v) {
			if id, ok := before[k]; ok {
				authNames = append(authNames, d.names[id])
			}
		}
		var dep int64
		for _, p := range prev {
			dep = max(dep, depth[p]+1)
		}
		depth[name] = dep
		e := d.add(pdu{Name: name, Sender: n.sender, Type: n.typ, StateKey: n.stateKey, Content: n.content,
			Prev: prev, Auth: authNames, Depth: dep})
		after := before
		if t, ok := e.Tuple(); ok {
			after = maps.Clone(before)
			after[t] = e.ID()
		}
		d.stateAfter[name] = after
	}
	return d
}

// topoByName orders nodes so that prev events come first, choosing the smallest name among the
// nodes ready at each step.
func topoByName(prevs map[string]map[string]bool) []string {
	waiting := map[string]int{}
	next := map[string][]string{}
	for n, ps := range prevs {
		waiting[n] = len(ps)
		for p := range ps {
			next[p] = append(next[p], n)
		}
	}
	var out []string
	for len(out) < len(prevs) {
		var ready []string
		for n, w := range waiting {
			if w == 0 {
				ready = append(ready, n)
			}
		}
		if len(ready) == 0 {
			panic("cycle in test DAG")
		}
		n := slices.Min(ready)
		delete(waiting, n)
		out = append(out, n)
		for _, c := range next[n] {
			waiting[c]--
		}
	}
	return out
}
