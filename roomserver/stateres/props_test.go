package stateres

import (
	"errors"
	"maps"
	"math/rand/v2"
	"testing"

	"myelin/roomserver/auth"
	"myelin/roomserver/event"
)

var topicKey = event.StateTuple{Type: "m.room.topic"}

func permutations(sets []StateMap) [][]StateMap {
	if len(sets) <= 1 {
		return [][]StateMap{sets}
	}
	var out [][]StateMap
	for i := range sets {
		rest := append(append([]StateMap{}, sets[:i]...), sets[i+1:]...)
		for _, p := range permutations(rest) {
			out = append(out, append([]StateMap{sets[i]}, p...))
		}
	}
	return out
}

func TestResolveNothing(t *testing.T) {
	for _, rv := range []string{"1", "2", "12"} {
		for _, sets := range [][]StateMap{nil, {}, {{}}, {{}, {}}} {
			got, err := Resolve(event.MustVersion(rv), sets, newMemLoader(), auth.Check)
			if err != nil || len(got) != 0 {
				t.Errorf("v%s, %d empty sets: got %v, %v", rv, len(sets), got, err)
			}
		}
	}
}

// Resolving one state gives it back unchanged, without looking at any event, and as a copy.
func TestResolveOneState(t *testing.T) {
	for _, rv := range []string{"1", "2", "12"} {
		d := buildDAG(t, rv, v2Cases[0].nodes, v2Cases[0].edges)
		in := d.stateAfter["END"]
		orig := maps.Clone(in)
		l := newMemLoader() // knows no event: resolving one state must not need any
		got, err := Resolve(d.v, []StateMap{in}, l, auth.Check)
		if err != nil {
			t.Fatalf("v%s: %v", rv, err)
		}
		if !maps.Equal(got, orig) {
			t.Errorf("v%s: got %s, want %s", rv, d.show(got), d.show(orig))
		}
		got[topicKey] = "$changed"
		if !maps.Equal(in, orig) {
			t.Errorf("v%s: the result shares its map with the input", rv)
		}
		// The same state twice is no conflict either.
		if got, err := Resolve(d.v, []StateMap{in, orig}, l, auth.Check); err != nil || !maps.Equal(got, orig) {
			t.Errorf("v%s: same state twice: %v", rv, err)
		}
	}
}

// The resolution of a set of states does not depend on their order, nor on map iteration.
func TestResolveOrderIndependent(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, rv := range []string{"1", "2", "11", "12"} {
		for _, tc := range v2Cases {
			if rv == "12" {
				continue // these power levels name the creator, which v12 forbids
			}
			d := buildDAG(t, rv, tc.nodes, tc.edges)
			var names []string
			for n := range d.stateAfter {
				names = append(names, n)
			}
			for range 5 {
				rng.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
				var sets []StateMap
				for _, n := range names[:4] {
					sets = append(sets, d.stateAfter[n])
				}
				first, err := d.resolve(sets...)
				if err != nil {
					t.Fatalf("v%s %s: %v", rv, tc.name, err)
				}
				for _, p := range permutations(sets) {
					got, err := d.resolve(p...)
					if err != nil {
						t.Fatal(err)
					}
					if !maps.Equal(got, first) {
						t.Fatalf("v%s %s %v: order changes the result:\n%s\n%s", rv, tc.name, names[:4], d.show(first), d.show(got))
					}
				}
			}
		}
	}
}

var errStorage = errors.New("storage down")

type failingLoader struct {
	*memLoader
	failEvents, failChain, failRejected bool
}

func (l failingLoader) Events(ids []string) (map[string]*event.Event, error) {
	if l.failEvents {
		return nil, errStorage
	}
	return l.memLoader.Events(ids)
}

func (l failingLoader) AuthChain(ids []string) (map[string]struct{}, error) {
	if l.failChain {
		return nil, errStorage
	}
	return WalkAuthChain(l.Events, ids)
}

func (l failingLoader) Rejected(ids []string) (map[string]struct{}, error) {
	if l.failRejected {
		return nil, errStorage
	}
	return l.memLoader.Rejected(ids)
}

func TestResolveErrors(t *testing.T) {
	for _, rv := range []string{"1", "2", "12"} {
		d := buildDAG(t, rv, []node{topic("TX", alice), topic("TY", alice)},
			[][]string{{"END", "TX", "START"}, {"END", "TY", "START"}})
		a, b := d.stateAfter["TX"], d.stateAfter["TY"]

		check := func(name string, l Loader, sets []StateMap, want error) {
			t.Helper()
			if _, err := Resolve(d.v, sets, l, auth.Check); !errors.Is(err, want) {
				t.Errorf("v%s %s: got %v, want %v", rv, name, err, want)
			}
		}
		check("events fail", failingLoader{memLoader: d.l, failEvents: true}, []StateMap{a, b}, errStorage)
		if rv != "1" {
			check("auth chain fails", failingLoader{memLoader: d.l, failChain: true}, []StateMap{a, b}, errStorage)
			check("rejection status fails", failingLoader{memLoader: d.l, failRejected: true}, []StateMap{a, b}, errStorage)
		}
		missing := maps.Clone(b)
		missing[topicKey] = "$nowhere:example.com"
		check("missing event", d.l, []StateMap{a, missing}, ErrMissingEvent)

		notState := maps.Clone(b)
		notState[topicKey] = d.ids["START"]
		check("message in a state map", d.l, []StateMap{a, notState}, ErrBadEvent)

		// A missing auth event of a conflicted event: its auth chain cannot be walked.
		orphan := d.add(pdu{Name: "ORPHAN", Sender: alice, Type: "m.room.topic", StateKey: sp(""),
			Content: map[string]any{}, Prev: []string{"START"}, Auth: []string{"IMA"}, Depth: 20})
		delete(d.l.events, d.ids["IMA"])
		withOrphan := maps.Clone(b)
		withOrphan[topicKey] = orphan.ID()
		if rv != "1" {
			check("missing auth event", d.l, []StateMap{a, withOrphan}, ErrMissingEvent)
		}
	}
	if _, err := Resolve(event.RoomVersion{ID: "x"}, []StateMap{{}, {}}, newMemLoader(), auth.Check); !errors.Is(err, ErrUnknownAlgorithm) {
		t.Errorf("unknown algorithm: %v", err)
	}
}

// An event of another room in the states is refused.
func TestResolveOtherRoom(t *testing.T) {
	d := buildDAG(t, "2", nil, nil)
	other := newTestRoom(t, "2")
	other.roomID = "!other:example.com"
	other.l = d.l
	other.add(pdu{Name: "FOREIGN", Sender: alice, Type: "m.room.topic", StateKey: sp(""), Content: map[string]any{}, Depth: 9})
	a := d.stateAfter["START"]
	b := maps.Clone(a)
	b[topicKey] = other.ids["FOREIGN"]
	if _, err := d.resolve(a, b); !errors.Is(err, ErrBadEvent) {
		t.Errorf("got %v, want ErrBadEvent", err)
	}
}

// A rejected auth event does not stand in for state missing from the partial state.
func TestResolveV21RejectedAuthEvent(t *testing.T) {
	r := newV21Room(t)
	r.ev("MA1", alice, "m.room.member", alice, joined, nil, "CREATE")
	r.ev("POWER", alice, "m.room.power_levels", "", map[string]any{"users": map[string]any{bob: 100}}, []string{"MA1"})
	r.ev("JR1", alice, "m.room.join_rules", "", map[string]any{"join_rule": "public"}, []string{"MA1", "POWER"})
	r.ev("MB", bob, "m.room.member", bob, joined, []string{"POWER", "JR1"})
	r.ev("JR2", alice, "m.room.join_rules", "", map[string]any{"join_rule": "invite"}, []string{"MA1", "POWER"})
	r.ev("MA2", alice, "m.room.member", alice, left, []string{"POWER", "MA1"})
	r.l.rejected[r.ids["MA1"]] = true

	got, err := r.resolve(r.state("CREATE", "MA2", "MB", "POWER", "JR2"), r.state("CREATE", "MA2", "MB", "POWER", "JR1"))
	if err != nil {
		t.Fatal(err)
	}
	if want := r.state("CREATE", "MA2", "MB", "POWER"); !maps.Equal(got, want) {
		t.Errorf("got  %s\nwant %s", r.show(got), r.show(want))
	}
}
