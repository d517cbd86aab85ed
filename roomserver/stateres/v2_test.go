package stateres

import (
	"maps"
	"testing"
)

// The classic state resolution v2 cases of Synapse's tests/state/test_v2.py, rebuilt as DAGs:
// each hangs two forks off START that meet at END, and the state at END must be the expected
// events (plus whatever did not change since START).
var v2Cases = []struct {
	name     string
	nodes    []node
	edges    [][]string
	expected []string
}{
	{
		// Bob's power levels change, made while alice bans him, must not survive the ban.
		name: "ban vs power levels",
		nodes: []node{
			pl("PA", alice, map[string]any{alice: 100, bob: 50}),
			member("MA", alice, alice, "join"),
			member("MB", alice, bob, "ban"),
			pl("PB", bob, map[string]any{alice: 100, bob: 50}),
		},
		edges:    [][]string{{"END", "MB", "MA", "PA", "START"}, {"END", "PB", "PA"}},
		expected: []string{"PA", "MA", "MB"},
	},
	{
		// Evelyn joins on a fork where the room is still public; it was made private first.
		name: "join rule evasion",
		nodes: []node{
			stateNode("JR", alice, "m.room.join_rules", "", map[string]any{"join_rule": "private"}),
			member("ME", evelyn, evelyn, "join"),
		},
		edges:    [][]string{{"END", "JR", "START"}, {"END", "ME", "START"}},
		expected: []string{"JR"},
	},
	{
		name: "offtopic power levels",
		nodes: []node{
			pl("PA", alice, map[string]any{alice: 100, bob: 50}),
			pl("PB", bob, map[string]any{alice: 100, bob: 50, charlie: 50}),
			pl("PC", charlie, map[string]any{alice: 100, bob: 50, charlie: 0}),
		},
		edges:    [][]string{{"END", "PC", "PB", "PA", "START"}, {"END", "PA"}},
		expected: []string{"PC"},
	},
	{
		name: "topic basic",
		nodes: []node{
			topic("T1", alice),
			pl("PA1", alice, map[string]any{alice: 100, bob: 50}),
			topic("T2", alice),
			pl("PA2", alice, map[string]any{alice: 100, bob: 0}),
			pl("PB", bob, map[string]any{alice: 100, bob: 50}),
			topic("T3", bob),
		},
		edges:    [][]string{{"END", "PA2", "T2", "PA1", "T1", "START"}, {"END", "T3", "PB", "PA1"}},
		expected: []string{"PA2", "T2"},
	},
	{
		name: "topic reset",
		nodes: []node{
			topic("T1", alice),
			pl("PA", alice, map[string]any{alice: 100, bob: 50}),
			topic("T2", bob),
			member("MB", alice, bob, "ban"),
		},
		edges:    [][]string{{"END", "MB", "T2", "PA", "T1", "START"}, {"END", "T1"}},
		expected: []string{"T1", "MB", "PA"},
	},
	{
		name: "topic",
		nodes: []node{
			topic("T1", alice),
			pl("PA1", alice, map[string]any{alice: 100, bob: 50}),
			topic("T2", alice),
			pl("PA2", alice, map[string]any{alice: 100, bob: 0}),
			pl("PB", bob, map[string]any{alice: 100, bob: 50}),
			topic("T3", bob),
			message("MZ1", zara),
			topic("T4", alice),
		},
		edges: [][]string{
			{"END", "T4", "MZ1", "PA2", "T2", "PA1", "T1", "START"},
			{"END", "MZ1", "T3", "PB", "PA1"},
		},
		expected: []string{"T4", "PA2"},
	},
	{
		// T3 wins although T4 is newer: T4 cites power levels that branch off the mainline
		// earlier.
		name: "mainline sort",
		nodes: []node{
			topic("T1", alice),
			pl("PA1", alice, map[string]any{alice: 100, bob: 50}),
			topic("T2", alice),
			stateNode("PA2", alice, "m.room.power_levels", "", map[string]any{
				"users":  map[string]any{alice: 100, bob: 50},
				"events": map[string]any{"m.room.power_levels": 100},
			}),
			pl("PB", bob, map[string]any{alice: 100, bob: 50}),
			topic("T3", bob),
			topic("T4", alice),
		},
		edges: [][]string{
			{"END", "T3", "PA2", "T2", "PA1", "T1", "START"},
			{"END", "T4", "PB", "PA1"},
		},
		expected: []string{"T3", "PA2"},
	},
}

// v2Versions are the room versions the v2 cases run in: both PDU formats, and the versions
// whose auth rules differ in what these cases touch.
var v2Versions = []string{"2", "6", "11"}

func TestResolveV2Cases(t *testing.T) {
	for _, rv := range v2Versions {
		for _, tc := range v2Cases {
			t.Run(rv+"/"+tc.name, func(t *testing.T) {
				d := buildDAG(t, rv, tc.nodes, tc.edges)
				want := d.state(tc.expected...)
				start, end := d.stateAfter["START"], d.stateAfter["END"]
				got := StateMap{}
				for k, id := range end {
					if _, ok := want[k]; ok || start[k] != id {
						got[k] = id
					}
				}
				if !maps.Equal(got, want) {
					t.Errorf("state at END (changed since START):\n got  %s\n want %s", d.show(got), d.show(want))
				}
			})
		}
	}
}

// Bob and charlie join at the same time: both joins survive.
func TestResolveV2ConcurrentJoins(t *testing.T) {
	r := newTestRoom(t, "2")
	r.add(pdu{Name: "CREATE", Sender: alice, Type: "m.room.create", StateKey: sp(""), Content: map[string]any{"creator": alice}})
	r.add(pdu{Name: "IMA", Sender: alice, Type: "m.room.member", StateKey: sp(alice),
		Content: map[string]any{"membership": "join"}, Prev: []string{"CREATE"}, Auth: []string{"CREATE"}, Depth: 1})
	r.add(pdu{Name: "IJR", Sender: alice, Type: "m.room.join_rules", StateKey: sp(""),
		Content: map[string]any{"join_rule": "public"}, Prev: []string{"IMA"}, Auth: []string{"CREATE", "IMA"}, Depth: 2})
	for _, u := range []struct{ name, user string }{{"IMB", bob}, {"IMC", charlie}} {
		r.add(pdu{Name: u.name, Sender: u.user, Type: "m.room.member", StateKey: sp(u.user),
			Content: map[string]any{"membership": "join"}, Prev: []string{"IJR"}, Auth: []string{"CREATE", "IJR"}, Depth: 3})
	}
	got, err := r.resolve(r.state("CREATE", "IMA", "IJR", "IMB"), r.state("CREATE", "IMA", "IJR", "IMC"))
	if err != nil {
		t.Fatal(err)
	}
	if want := r.state("CREATE", "IMA", "IJR", "IMB", "IMC"); !maps.Equal(got, want) {
		t.Errorf("got %s, want %s", r.show(got), r.show(want))
	}
}
