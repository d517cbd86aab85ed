package stateres

import (
	"errors"
	"maps"
	"slices"
	"testing"
)

// Synapse's lexicographical sort case: l, m, n and p cite o, m also cites n. With equal power
// and timestamps the ids decide among the ready events.
func TestReverseTopologicalPowerOrder(t *testing.T) {
	r := newTestRoom(t, "2")
	r.add(pdu{Name: "CREATE", Sender: alice, Type: "m.room.create", StateKey: sp(""), Content: map[string]any{"creator": alice}, TS: 1})
	ev := func(name string, auth ...string) {
		r.add(pdu{Name: name, Sender: alice, Type: "m.room.join_rules", StateKey: sp(""),
			Content: map[string]any{"join_rule": "public"}, Auth: append([]string{"CREATE"}, auth...), TS: 5})
	}
	ev("o")
	ev("l", "o")
	ev("n", "o")
	ev("m", "n", "o")
	ev("p", "o")
	s := newStore(r.v, r.l)
	x := map[string]struct{}{}
	for _, n := range []string{"l", "m", "n", "o", "p"} {
		x[r.ids[n]] = struct{}{}
	}
	chain, err := s.authChainOf(slices.Collect(maps.Keys(x)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.reverseTopologicalPowerOrder(x, chain)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, id := range got {
		names = append(names, r.names[id])
	}
	if want := []string{"o", "l", "n", "m", "p"}; !slices.Equal(names, want) {
		t.Errorf("got %v, want %v", names, want)
	}
}

// Ancestry through events outside the sorted set still orders it.
func TestReverseTopologicalPowerOrderThroughOthers(t *testing.T) {
	r := newTestRoom(t, "2")
	r.add(pdu{Name: "CREATE", Sender: alice, Type: "m.room.create", StateKey: sp(""), Content: map[string]any{"creator": alice}, TS: 1})
	jr := func(name string, ts int64, auth ...string) {
		r.add(pdu{Name: name, Sender: alice, Type: "m.room.join_rules", StateKey: sp(""),
			Content: map[string]any{"join_rule": "public"}, Auth: append([]string{"CREATE"}, auth...), TS: ts})
	}
	jr("a", 9)      // older in the DAG, newer by the clock
	jr("b", 5, "a") // not sorted
	jr("c", 1, "b") // cites a only through b
	s := newStore(r.v, r.l)
	x := map[string]struct{}{r.ids["a"]: {}, r.ids["c"]: {}}
	chain, err := s.authChainOf([]string{r.ids["a"], r.ids["c"]})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.reverseTopologicalPowerOrder(x, chain)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{r.ids["a"], r.ids["c"]}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// Synapse's auth chain difference cases: the state events count as part of their set's chain.
func TestAuthDifference(t *testing.T) {
	r := newTestRoom(t, "2")
	for i, n := range []string{"A", "B", "C", "D"} {
		var auth []string
		if i > 0 {
			auth = []string{[]string{"A", "B", "C"}[i-1]}
		}
		r.add(pdu{Name: n, Sender: alice, Type: "m.room.member", StateKey: sp(""), Content: map[string]any{}, Auth: auth})
	}
	key := func(k string) StateMap { return StateMap{{Type: k}: r.ids[k]} }
	union := func(ms ...StateMap) StateMap {
		out := StateMap{}
		for _, m := range ms {
			maps.Copy(out, m)
		}
		return out
	}
	cases := []struct {
		sets []StateMap
		want []string
	}{
		{[]StateMap{union(key("A"), key("B")), key("C")}, []string{"C"}},
		{[]StateMap{union(key("A"), key("B")), union(key("C"), key("D"))}, []string{"C", "D"}},
		{[]StateMap{key("A"), key("A")}, nil},
	}
	for i, tc := range cases {
		unconflicted, _ := separateV2(tc.sets)
		s := newStore(r.v, r.l)
		diff, err := s.authDifference(tc.sets, unconflicted)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for id := range diff {
			got = append(got, r.names[id])
		}
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("case %d: got %v, want %v", i, got, tc.want)
		}
	}
}

func TestWalkAuthChain(t *testing.T) {
	r := newTestRoom(t, "2")
	r.add(pdu{Name: "A", Sender: alice, Type: "m.room.create", StateKey: sp(""), Content: map[string]any{}})
	r.add(pdu{Name: "B", Sender: alice, Type: "m.room.member", StateKey: sp(alice), Content: joined, Auth: []string{"A"}})
	r.add(pdu{Name: "C", Sender: alice, Type: "m.room.member", StateKey: sp(alice), Content: joined, Auth: []string{"A", "B"}})
	chain, err := WalkAuthChain(r.l.Events, []string{r.ids["C"], r.ids["B"]})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]struct{}{r.ids["A"]: {}, r.ids["B"]: {}}; !maps.Equal(chain, want) {
		t.Errorf("got %v, want %v", chain, want)
	}
	delete(r.l.events, r.ids["A"])
	if _, err := WalkAuthChain(r.l.Events, []string{r.ids["C"]}); !errors.Is(err, ErrMissingEvent) {
		t.Errorf("missing auth event: got %v", err)
	}
}
