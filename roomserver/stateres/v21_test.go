package stateres

import (
	"maps"
	"testing"
)

// v21Room builds a room version 12 room with explicit auth events, as Synapse's
// tests/state/test_v21.py does; the create event is implicitly an auth event of every other.
type v21Room struct{ *testRoom }

func newV21Room(t *testing.T) v21Room {
	r := v21Room{newTestRoom(t, "12")}
	r.add(pdu{Name: "CREATE", Sender: alice, Type: "m.room.create", StateKey: sp(""),
		Content: map[string]any{"room_version": "12"}, Depth: 1})
	return r
}

func (r v21Room) ev(name, sender, typ, stateKey string, content map[string]any, auth []string, prev ...string) {
	r.add(pdu{Name: name, Sender: sender, Type: typ, StateKey: sp(stateKey), Content: content,
		Auth: auth, Prev: prev, Depth: 5})
}

func (r v21Room) check(t *testing.T, want StateMap, sets ...StateMap) {
	t.Helper()
	for _, order := range [][]StateMap{sets, reversed(sets)} {
		got, err := r.resolve(order...)
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(got, want) {
			t.Errorf("got  %s\nwant %s", r.show(got), r.show(want))
		}
	}
}

func reversed(sets []StateMap) []StateMap {
	out := make([]StateMap, len(sets))
	for i, s := range sets {
		out[len(sets)-1-i] = s
	}
	return out
}

var (
	joined = map[string]any{"membership": "join"}
	left   = map[string]any{"membership": "leave"}
)

// Evelyn's rename cites the old power levels directly and the new ones only through her join.
// A state after it that holds the old power levels must not win back over the new ones: the
// conflicted state subgraph brings in the events between the two power levels.
func TestResolveV21ReplayConflictedSubgraph(t *testing.T) {
	r := newV21Room(t)
	r.ev("MA", alice, "m.room.member", alice, joined, nil, "CREATE")
	r.ev("POWER1", alice, "m.room.power_levels", "", map[string]any{"users": map[string]any{}}, []string{"MA"})
	r.ev("JR", alice, "m.room.join_rules", "", map[string]any{"join_rule": "public"}, []string{"MA", "POWER1"})
	r.ev("MB", bob, "m.room.member", bob, joined, []string{"POWER1", "JR"})
	r.ev("MC", charlie, "m.room.member", charlie, joined, []string{"POWER1", "JR"})
	r.ev("POWER2", alice, "m.room.power_levels", "", map[string]any{"users": map[string]any{bob: 50}}, []string{"MA", "POWER1"})
	r.ev("POWER3", bob, "m.room.power_levels", "", map[string]any{"users": map[string]any{bob: 50, charlie: 50}}, []string{"MB", "POWER2"})
	r.ev("ME1", evelyn, "m.room.member", evelyn, joined, []string{"POWER3", "JR"})
	r.ev("ME2", evelyn, "m.room.member", evelyn, joined, []string{"POWER1", "JR", "ME1"})
	r.ev("MZ", zara, "m.room.member", zara, joined, []string{"POWER3", "JR"})

	dodgy := r.state("CREATE", "MA", "MB", "MC", "ME2", "POWER1", "JR")
	sensible := r.state("CREATE", "MA", "MB", "MC", "MZ", "POWER3", "JR")
	// ME2 is replayed in the POWER1 epoch, then ME1 in the POWER3 one.
	want := r.state("CREATE", "MA", "MB", "MC", "ME1", "MZ", "POWER3", "JR")
	r.check(t, want, dodgy, sensible)

	// The subgraph never reaches back to the create event.
	s := newStore(r.v, r.l)
	sub, err := s.conflictedSubgraph(map[string]struct{}{
		r.ids["ME2"]: {}, r.ids["MZ"]: {}, r.ids["POWER1"]: {}, r.ids["POWER3"]: {},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := sub[r.ids["CREATE"]]; ok {
		t.Error("create event in the conflicted subgraph")
	}
	for _, n := range []string{"ME1", "POWER2", "MB", "JR"} {
		if _, ok := sub[r.ids[n]]; !ok {
			t.Errorf("%s, on a path between conflicted events, is not in the subgraph", n)
		}
	}
	for _, n := range []string{"MA", "MC"} {
		if _, ok := sub[r.ids[n]]; ok {
			t.Errorf("%s, on no path between conflicted events, is in the subgraph", n)
		}
	}
}

// The join rules are conflicted and the member who set both has since left: replayed over the
// unconflicted state (v2), neither would pass and the join rules would vanish; replayed from the
// empty state (v2.1), the newer one wins.
func TestResolveV21StartFromEmptyState(t *testing.T) {
	r := newV21Room(t)
	r.ev("MA1", alice, "m.room.member", alice, joined, nil, "CREATE")
	r.ev("POWER", alice, "m.room.power_levels", "", map[string]any{"users": map[string]any{bob: 100}}, []string{"MA1"})
	r.ev("JR1", alice, "m.room.join_rules", "", map[string]any{"join_rule": "public"}, []string{"MA1", "POWER"})
	r.ev("MB", bob, "m.room.member", bob, joined, []string{"POWER", "JR1"})
	r.ev("JR2", alice, "m.room.join_rules", "", map[string]any{"join_rule": "invite"}, []string{"MA1", "POWER"})
	r.ev("MA2", alice, "m.room.member", alice, left, []string{"POWER", "MA1"})

	correct := r.state("CREATE", "MA2", "MB", "POWER", "JR2")
	incorrect := r.state("CREATE", "MA2", "MB", "POWER", "JR1")
	r.check(t, correct, correct, incorrect)
}
