package stateres

import (
	"fmt"
	"testing"
)

// BenchmarkResolveForks resolves two forks of a room that conflict on 1,000 state events: custom
// state both forks set (sorted by mainline), or members one fork kicks while the other has them
// change their display name (power events, sorted topologically).
func BenchmarkResolveForks(b *testing.B) {
	const n = 1000
	for _, rv := range []string{"2", "11", "12"} {
		for _, kind := range []string{"state", "kicks"} {
			b.Run(fmt.Sprintf("v%s/%s", rv, kind), func(b *testing.B) {
				r := newTestRoom(b, rv)
				create := map[string]any{"room_version": rv}
				if !r.v.CreatorIsSender {
					create["creator"] = alice
				}
				power := map[string]any{"users": map[string]any{alice: 100}, "kick": 50}
				if r.v.PrivilegedCreators {
					power = map[string]any{"kick": 50}
				}
				r.add(pdu{Name: "CREATE", Sender: alice, Type: "m.room.create", StateKey: sp(""), Content: create, Depth: 1})
				base := []string{"CREATE"}
				withCreate := func(auth ...string) []string {
					if r.v.RoomIDFromCreateEvent {
						return auth
					}
					return append([]string{"CREATE"}, auth...)
				}
				r.add(pdu{Name: "IMA", Sender: alice, Type: "m.room.member", StateKey: sp(alice), Content: joined,
					Prev: []string{"CREATE"}, Auth: withCreate(), Depth: 2})
				r.add(pdu{Name: "IPOWER", Sender: alice, Type: "m.room.power_levels", StateKey: sp(""), Content: power,
					Prev: []string{"IMA"}, Auth: withCreate("IMA"), Depth: 3})
				r.add(pdu{Name: "IJR", Sender: alice, Type: "m.room.join_rules", StateKey: sp(""),
					Content: map[string]any{"join_rule": "public"}, Prev: []string{"IPOWER"}, Auth: withCreate("IMA", "IPOWER"), Depth: 4})
				base = append(base, "IMA", "IPOWER", "IJR")
				forkA, forkB := append([]string{}, base...), append([]string{}, base...)
				for i := range n {
					switch kind {
					case "state":
						for _, fork := range []string{"A", "B"} {
							name := fmt.Sprintf("S%s%d", fork, i)
							r.add(pdu{Name: name, Sender: alice, Type: "m.test", StateKey: sp(fmt.Sprint(i)),
								Content: map[string]any{"fork": fork}, Prev: []string{"IJR"}, Auth: withCreate("IMA", "IPOWER"), Depth: 5})
							if fork == "A" {
								forkA = append(forkA, name)
							} else {
								forkB = append(forkB, name)
							}
						}
					case "kicks":
						user := fmt.Sprintf("@u%d:example.com", i)
						join, rename, kick := fmt.Sprint("J", i), fmt.Sprint("R", i), fmt.Sprint("K", i)
						r.add(pdu{Name: join, Sender: user, Type: "m.room.member", StateKey: sp(user), Content: joined,
							Prev: []string{"IJR"}, Auth: withCreate("IPOWER", "IJR"), Depth: 5})
						r.add(pdu{Name: rename, Sender: user, Type: "m.room.member", StateKey: sp(user),
							Content: map[string]any{"membership": "join", "displayname": "x"}, Prev: []string{join},
							Auth: withCreate("IPOWER", "IJR", join), Depth: 6})
						r.add(pdu{Name: kick, Sender: alice, Type: "m.room.member", StateKey: sp(user),
							Content: map[string]any{"membership": "leave"}, Prev: []string{join},
							Auth: withCreate("IMA", "IPOWER", join), Depth: 6})
						forkA, forkB = append(forkA, rename), append(forkB, kick)
					}
				}
				a, bs := r.state(forkA...), r.state(forkB...)
				got, err := r.resolve(a, bs)
				if err != nil {
					b.Fatal(err)
				}
				if len(got) != len(a) {
					b.Fatalf("resolved %d keys, want %d", len(got), len(a))
				}
				b.ResetTimer()
				for b.Loop() {
					if _, err := r.resolve(a, bs); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
