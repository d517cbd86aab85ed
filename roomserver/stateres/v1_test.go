package stateres

import (
	"bytes"
	"crypto/sha1"
	"maps"
	"testing"
)

// v1Room is a room version 1 room: alice created it (100), bob and zara joined (0).
func v1Room(t *testing.T) *testRoom {
	r := newTestRoom(t, "1")
	r.add(pdu{Name: "CREATE", Sender: alice, Type: "m.room.create", StateKey: sp(""), Content: map[string]any{"creator": alice}, Depth: 1})
	r.add(pdu{Name: "IMA", Sender: alice, Type: "m.room.member", StateKey: sp(alice), Content: joined,
		Prev: []string{"CREATE"}, Auth: []string{"CREATE"}, Depth: 2})
	r.add(pdu{Name: "IPOWER", Sender: alice, Type: "m.room.power_levels", StateKey: sp(""),
		Content: map[string]any{"users": map[string]any{alice: 100}}, Prev: []string{"IMA"}, Auth: []string{"CREATE", "IMA"}, Depth: 3})
	r.add(pdu{Name: "IJR", Sender: alice, Type: "m.room.join_rules", StateKey: sp(""),
		Content: map[string]any{"join_rule": "public"}, Prev: []string{"IPOWER"}, Auth: []string{"CREATE", "IMA", "IPOWER"}, Depth: 4})
	for _, m := range []struct{ name, user string }{{"IMB", bob}, {"IMZ", zara}} {
		r.add(pdu{Name: m.name, Sender: m.user, Type: "m.room.member", StateKey: sp(m.user), Content: joined,
			Prev: []string{"IJR"}, Auth: []string{"CREATE", "IPOWER", "IJR"}, Depth: 5})
	}
	return r
}

func (r *testRoom) v1State(names ...string) StateMap {
	return r.state(append([]string{"CREATE", "IMA", "IPOWER", "IJR", "IMB", "IMZ"}, names...)...)
}

func (r *testRoom) stateEv(name, sender, typ, stateKey string, content map[string]any, depth int64) {
	r.add(pdu{Name: name, Sender: sender, Type: typ, StateKey: sp(stateKey), Content: content,
		Prev: []string{"IMZ"}, Auth: []string{"CREATE", "IPOWER", "IMA"}, Depth: depth})
}

func TestResolveV1(t *testing.T) {
	type set []string
	cases := []struct {
		name   string
		events func(r *testRoom)
		sets   []set
		want   set // names replacing those of the common state
	}{
		{
			// The older power levels come first; bob's newer ones raise him above his
			// level in them, so they are not allowed and the older stay.
			name: "power levels: a newer event not allowed stops the walk",
			events: func(r *testRoom) {
				r.stateEv("PA", alice, "m.room.power_levels", "", map[string]any{"users": map[string]any{alice: 100, bob: 50}}, 6)
				r.stateEv("PB", bob, "m.room.power_levels", "", map[string]any{"users": map[string]any{alice: 100, bob: 100}}, 7)
			},
			sets: []set{{"PA"}, {"PB"}},
			want: set{"PA"},
		},
		{
			// Now bob's are older: alice may not lower bob, who is at her own level.
			name: "power levels: the older event is the starting point",
			events: func(r *testRoom) {
				r.stateEv("PA", alice, "m.room.power_levels", "", map[string]any{"users": map[string]any{alice: 100, bob: 50}}, 7)
				r.stateEv("PB", bob, "m.room.power_levels", "", map[string]any{"users": map[string]any{alice: 100, bob: 100}}, 6)
			},
			sets: []set{{"PA"}, {"PB"}},
			want: set{"PB"},
		},
		{
			name: "power levels: newer allowed events are taken in turn",
			events: func(r *testRoom) {
				r.stateEv("P1", alice, "m.room.power_levels", "", map[string]any{"users": map[string]any{alice: 100, bob: 50}}, 6)
				r.stateEv("P2", alice, "m.room.power_levels", "", map[string]any{"users": map[string]any{alice: 100, bob: 60}}, 7)
				r.stateEv("P3", alice, "m.room.power_levels", "", map[string]any{"users": map[string]any{alice: 100, bob: 70}}, 8)
			},
			sets: []set{{"P1"}, {"P3"}, {"P2"}},
			want: set{"P3"},
		},
		{
			// Zara cannot set the topic (state_default 50): the newest allowed topic wins.
			name: "other events: the newest allowed one",
			events: func(r *testRoom) {
				r.stateEv("T1", alice, "m.room.topic", "", map[string]any{"topic": "1"}, 6)
				r.stateEv("T2", zara, "m.room.topic", "", map[string]any{"topic": "2"}, 8)
				r.stateEv("T3", alice, "m.room.topic", "", map[string]any{"topic": "3"}, 7)
			},
			sets: []set{{"T1"}, {"T2"}, {"T3"}},
			want: set{"T3"},
		},
		{
			name: "other events: the oldest when none is allowed",
			events: func(r *testRoom) {
				r.stateEv("T1", zara, "m.room.topic", "", map[string]any{"topic": "1"}, 6)
				r.stateEv("T2", zara, "m.room.topic", "", map[string]any{"topic": "2"}, 8)
			},
			sets: []set{{"T2"}, {"T1"}},
			want: set{"T1"},
		},
		{
			// The power levels are resolved first, so alice's ban of bob is checked with
			// bob demoted, and passes.
			name: "members are resolved against the resolved power levels",
			events: func(r *testRoom) {
				r.stateEv("PUP", alice, "m.room.power_levels", "", map[string]any{"users": map[string]any{alice: 100, bob: 100}}, 6)
				r.stateEv("PDOWN", alice, "m.room.power_levels", "", map[string]any{"users": map[string]any{alice: 100}}, 5)
				r.stateEv("BAN", alice, "m.room.member", bob, map[string]any{"membership": "ban"}, 7)
			},
			sets: []set{{"PDOWN", "BAN"}, {"PUP"}},
			want: set{"PUP", "IMB"},
		},
		{
			// In v1 a key that only some states have is not a conflict.
			name: "a key missing from a state is not a conflict",
			events: func(r *testRoom) {
				r.stateEv("T1", zara, "m.room.topic", "", map[string]any{"topic": "1"}, 6)
			},
			sets: []set{{"T1"}, {}},
			want: set{"T1"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := v1Room(t)
			tc.events(r)
			var sets []StateMap
			for _, s := range tc.sets {
				sets = append(sets, r.v1State(s...))
			}
			want := r.v1State(tc.want...)
			for _, order := range permutations(sets) {
				got, err := r.resolve(order...)
				if err != nil {
					t.Fatal(err)
				}
				if !maps.Equal(got, want) {
					t.Fatalf("got  %s\nwant %s", r.show(got), r.show(want))
				}
			}
		})
	}
}

// Between events of the same depth, the lower sha1(event_id) counts as newer.
func TestResolveV1SHA1TieBreak(t *testing.T) {
	r := v1Room(t)
	r.stateEv("TA", alice, "m.room.topic", "", map[string]any{"topic": "a"}, 6)
	r.stateEv("TB", alice, "m.room.topic", "", map[string]any{"topic": "b"}, 6)
	a, b := sha1.Sum([]byte(r.ids["TA"])), sha1.Sum([]byte(r.ids["TB"]))
	want := "TA"
	if bytes.Compare(b[:], a[:]) < 0 {
		want = "TB"
	}
	got, err := r.resolve(r.v1State("TA"), r.v1State("TB"))
	if err != nil {
		t.Fatal(err)
	}
	if got[topicKey] != r.ids[want] {
		t.Errorf("topic %s, want %s", r.names[got[topicKey]], want)
	}
}
