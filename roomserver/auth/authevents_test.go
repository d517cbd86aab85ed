package auth

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"myelin/roomserver/event"
)

func TestStateNeededForAuth(t *testing.T) {
	create := event.StateTuple{Type: TypeCreate}
	pl := event.StateTuple{Type: TypePowerLevels}
	jr := event.StateTuple{Type: TypeJoinRules}
	mem := func(u string) event.StateTuple { return event.StateTuple{Type: TypeMember, StateKey: u} }
	tpi := event.StateTuple{Type: TypeThirdPartyInvite, StateKey: "tok"}
	cases := []struct {
		name            string
		versions        string
		typ, sk, sender string
		content         string
		want            []event.StateTuple
	}{
		{"create needs nothing", "1-12", TypeCreate, "", alice, `{}`, nil},
		{"message (v1-v11)", "-11", "m.room.message", "", bob, `{}`, []event.StateTuple{create, pl, mem(bob)}},
		{"message (v12): create is never selected", "12", "m.room.message", "", bob, `{}`, []event.StateTuple{pl, mem(bob)}},
		{"join", "-11", TypeMember, bob, bob, `{"membership":"join"}`, []event.StateTuple{create, pl, mem(bob), jr}},
		{"invite", "12", TypeMember, carol, bob, `{"membership":"invite"}`, []event.StateTuple{pl, mem(bob), mem(carol), jr}},
		{"knock", "12", TypeMember, carol, carol, `{"membership":"knock"}`, []event.StateTuple{pl, mem(carol), jr}},
		{"leave needs no join rules", "12", TypeMember, carol, bob, `{"membership":"leave"}`, []event.StateTuple{pl, mem(bob), mem(carol)}},
		{"ban needs no join rules", "12", TypeMember, carol, bob, `{"membership":"ban"}`, []event.StateTuple{pl, mem(bob), mem(carol)}},
		{"third-party invite", "12", TypeMember, carol, bob,
			`{"membership":"invite","third_party_invite":{"signed":{"mxid":"@carol:c.example","token":"tok"}}}`,
			[]event.StateTuple{pl, mem(bob), mem(carol), jr, tpi}},
		{"restricted join (v8+)", "8-", TypeMember, carol, carol,
			`{"membership":"join","join_authorised_via_users_server":"@bob:b.example"}`,
			[]event.StateTuple{pl, mem(carol), jr, mem(bob)}},
		{"restricted join key ignored before v8", "-7", TypeMember, carol, carol,
			`{"membership":"join","join_authorised_via_users_server":"@bob:b.example"}`,
			[]event.StateTuple{create, pl, mem(carol), jr}},
		{"authoriser only for joins", "8-", TypeMember, carol, carol,
			`{"membership":"leave","join_authorised_via_users_server":"@bob:b.example"}`,
			[]event.StateTuple{pl, mem(carol)}},
	}
	for _, vid := range event.Versions() {
		v := event.MustVersion(vid)
		for _, tc := range cases {
			if !inVersions(tc.versions, vid) {
				continue
			}
			got := StateNeededForAuth(tc.typ, tc.sk, tc.sender, json.RawMessage(tc.content), v)
			want := tc.want
			if !v.RoomIDFromCreateEvent && len(want) > 0 && want[0] != create {
				want = append([]event.StateTuple{create}, want...)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("v%s %s: got %v, want %v", vid, tc.name, got, want)
			}
		}
	}
}

func TestCheckAuthEventsList(t *testing.T) {
	type built struct {
		e    *event.Event
		auth []*event.Event
	}
	cases := []struct {
		name     string
		versions string
		make     func(r *testRoom, s StateMap) built
		want     Rule
		wantErr  error
	}{
		{"valid message", "1-12", func(r *testRoom, s StateMap) built {
			return withAuth(r, msg(mallory)(r), authOf(r, s, create, pls, member(mallory)))
		}, "", nil},
		{"create event needs no auth events", "1-12", func(r *testRoom, s StateMap) built {
			return built{e: r.create}
		}, "", nil},
		{"2.1 duplicate type and state_key", "1-12", func(r *testRoom, s StateMap) built {
			other := r.state(TypePowerLevels, alice, "", r.defaultPowerLevels())
			a := authOf(r, s, create, pls, member(mallory))
			return withAuth(r, msg(mallory)(r), append(a, other))
		}, RuleAuthEventsDuplicate, nil},
		{"2.2 entry not selected: join rules for a message", "1-12", func(r *testRoom, s StateMap) built {
			return withAuth(r, msg(mallory)(r), authOf(r, s, create, pls, member(mallory), joinRules))
		}, RuleAuthEventsNotSelected, nil},
		{"2.2 entry not selected: another user's membership", "1-12", func(r *testRoom, s StateMap) built {
			return withAuth(r, msg(mallory)(r), authOf(r, s, create, pls, member(mallory), member(bob)))
		}, RuleAuthEventsNotSelected, nil},
		{"2.2 (v12) the create event is not selected", "12", func(r *testRoom, s StateMap) built {
			return withAuth(r, msg(mallory)(r), append(authOf(r, s, pls, member(mallory)), r.create))
		}, RuleAuthEventsNotSelected, nil},
		{"2.2 join selects join rules and target", "1-12", func(r *testRoom, s StateMap) built {
			return withAuth(r, memberEv(dave, dave, "join")(r), authOf(r, s, create, pls, member(dave), joinRules))
		}, "", nil},
		{"2.4 (v1-v11) no create event", "-11", func(r *testRoom, s StateMap) built {
			return withAuth(r, msg(mallory)(r), authOf(r, s, pls, member(mallory)))
		}, RuleAuthEventsNoCreate, nil},
		{"(v12) no create event needed", "12", func(r *testRoom, s StateMap) built {
			return withAuth(r, msg(mallory)(r), authOf(r, s, pls, member(mallory)))
		}, "", nil},
		{"2.5 entry from another room", "1-12", func(r *testRoom, s StateMap) built {
			other := r.build(pdu{"type": TypeMember, "sender": mallory, "state_key": mallory,
				"room_id": "!other:a.example", "content": map[string]any{"membership": "join"}})
			return withAuth(r, msg(mallory)(r), append(authOf(r, s, create, pls), other))
		}, RuleAuthEventsRoomID, nil},
		{"listed auth event not supplied", "1-12", func(r *testRoom, s StateMap) built {
			b := withAuth(r, msg(mallory)(r), authOf(r, s, create, pls, member(mallory)))
			b.auth = b.auth[1:]
			return b
		}, "", ErrMissingAuthEvent},
	}
	for _, vid := range event.Versions() {
		for _, tc := range cases {
			if !inVersions(tc.versions, vid) {
				continue
			}
			t.Run("v"+vid+"/"+tc.name, func(t *testing.T) {
				r := newTestRoom(t, vid, nil)
				b := tc.make(r, r.defaultState())
				err := CheckAuthEventsList(b.e, b.auth)
				if tc.wantErr != nil {
					if !errors.Is(err, tc.wantErr) || errors.Is(err, ErrNotAllowed) {
						t.Fatalf("want %v, got %v", tc.wantErr, err)
					}
					return
				}
				assertRule(t, err, tc.want)
			})
		}
	}
}

// Selectors for authOf.
type selector func(StateMap) *event.Event

var (
	create    selector = func(s StateMap) *event.Event { return s.Create() }
	pls       selector = func(s StateMap) *event.Event { return s.PowerLevels() }
	joinRules selector = func(s StateMap) *event.Event { return s.JoinRules() }
)

func member(u string) selector { return func(s StateMap) *event.Event { return s.Member(u) } }

// authOf picks auth events from state; the create event is dropped in v12 unless picked last
// by hand, as the v12 case does.
func authOf(r *testRoom, s StateMap, sel ...selector) []*event.Event {
	var out []*event.Event
	for _, f := range sel {
		e := f(s)
		if e == nil {
			r.t.Fatalf("selector found nothing")
		}
		if r.v.RoomIDFromCreateEvent && e.Type() == TypeCreate {
			continue
		}
		out = append(out, e)
	}
	return out
}

func withAuth(r *testRoom, p pdu, auth []*event.Event) struct {
	e    *event.Event
	auth []*event.Event
} {
	ids := []string{}
	for _, a := range auth {
		ids = append(ids, a.ID())
	}
	p["auth_events"] = ids
	return struct {
		e    *event.Event
		auth []*event.Event
	}{r.build(p), auth}
}
