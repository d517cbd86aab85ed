package roomserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"myelin/keys"
	"myelin/roomserver/auth"
	"myelin/roomserver/event"
	"myelin/storage"
	"myelin/storage/storagetest"
)

const (
	alice = "@alice:example.org"
	bob   = "@bob:example.org"
	carol = "@carol:example.org"
)

func newTestServer(t testing.TB, db *storage.DB) *Server {
	t.Helper()
	key, err := keys.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	return New(db, "example.org", key, Options{EncryptPrivateRooms: true})
}

func mustCreate(t testing.TB, s *Server, req CreateRoomRequest) string {
	t.Helper()
	if req.Creator == "" {
		req.Creator = alice
	}
	id, err := s.CreateRoom(context.Background(), req)
	if err != nil {
		t.Fatalf("CreateRoom: %v", err)
	}
	return id
}

func sendMessage(ctx context.Context, s *Server, roomID, sender, body string) (*event.Event, error) {
	return s.SendEvent(ctx, event.Proto{Type: "m.room.message", Sender: sender, RoomID: roomID,
		Content: mustJSON(map[string]any{"msgtype": "m.text", "body": body})})
}

func stateContent(t *testing.T, s *Server, roomID, typ, key string) map[string]any {
	t.Helper()
	ev, err := s.CurrentStateEvent(context.Background(), roomID, typ, key)
	if err != nil {
		t.Fatalf("state %s: %v", typ, err)
	}
	var m map[string]any
	if err := json.Unmarshal(ev.Content(), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestCreateRoomPresets(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		s := newTestServer(t, db)
		for _, version := range []string{"12", "11", "10", "1"} {
			for _, tc := range []struct {
				preset                  string
				joinRule, guest         string
				encrypted, bobIsCreator bool
			}{
				{PresetPrivateChat, "invite", "can_join", true, false},
				{PresetTrustedPrivateChat, "invite", "can_join", true, true},
				{PresetPublicChat, "public", "forbidden", false, false},
			} {
				t.Run(version+"/"+tc.preset, func(t *testing.T) {
					roomID := mustCreate(t, s, CreateRoomRequest{
						RoomVersion: version, Preset: tc.preset, Name: "The Pub", Topic: "beer",
						Alias: "#pub:example.org", Invite: []string{bob}, IsDirect: true,
						InitialState: []StateEvent{{Type: "m.room.avatar", Content: json.RawMessage(`{"url":"mxc://example.org/a"}`)}},
					})
					if got := stateContent(t, s, roomID, "m.room.join_rules", "")["join_rule"]; got != tc.joinRule {
						t.Errorf("join_rule %v, want %s", got, tc.joinRule)
					}
					if got := stateContent(t, s, roomID, "m.room.guest_access", "")["guest_access"]; got != tc.guest {
						t.Errorf("guest_access %v, want %s", got, tc.guest)
					}
					if got := stateContent(t, s, roomID, "m.room.history_visibility", "")["history_visibility"]; got != "shared" {
						t.Errorf("history_visibility %v", got)
					}
					_, err := s.CurrentStateEvent(ctx, roomID, "m.room.encryption", "")
					if tc.encrypted != (err == nil) {
						t.Errorf("encrypted: %v, want %v", err, tc.encrypted)
					}
					if got := stateContent(t, s, roomID, "m.room.name", "")["name"]; got != "The Pub" {
						t.Errorf("name %v", got)
					}
					if got := stateContent(t, s, roomID, "m.room.canonical_alias", "")["alias"]; got != "#pub:example.org" {
						t.Errorf("alias %v", got)
					}
					stateContent(t, s, roomID, "m.room.avatar", "")
					stateContent(t, s, roomID, "m.room.topic", "")
					if m := stateContent(t, s, roomID, auth.TypeMember, bob); m["membership"] != "invite" || m["is_direct"] != true {
						t.Errorf("bob's member event %v", m)
					}
					create := stateContent(t, s, roomID, auth.TypeCreate, "")
					_, bobCreator := create["additional_creators"]
					if want := tc.bobIsCreator && version == "12"; bobCreator != want {
						t.Errorf("additional_creators %v, want bob: %v", create, want)
					}
					if m, _ := s.Membership(ctx, roomID, alice); m != "join" {
						t.Errorf("alice membership %q", m)
					}
					if m, _ := s.Membership(ctx, roomID, bob); m != "invite" {
						t.Errorf("bob membership %q", m)
					}
					if _, err := s.Join(ctx, roomID, bob); err != nil {
						t.Fatalf("invited bob joins: %v", err)
					}
					if members, _ := s.Members(ctx, roomID, "join"); len(members) != 2 {
						t.Errorf("joined members %v", members)
					}
					if _, err := sendMessage(ctx, s, roomID, bob, "hi"); err != nil {
						t.Errorf("bob sends: %v", err)
					}
					rooms, _ := s.JoinedRooms(ctx, bob)
					found := false
					for _, r := range rooms {
						found = found || r == roomID
					}
					if !found {
						t.Errorf("JoinedRooms(bob) = %v lacks %s", rooms, roomID)
					}
				})
			}
		}
		if _, err := s.CreateRoom(ctx, CreateRoomRequest{Creator: alice, RoomVersion: "99"}); !errors.As(err, new(event.ErrUnsupportedRoomVersion)) {
			t.Errorf("unknown room version: %v", err)
		}
	})
}

// countRows counts the rows of tables, to show that something left no trace.
func countRows(t *testing.T, db *storage.DB) string {
	t.Helper()
	out := ""
	for _, table := range []string{"rooms", "events", "state_snapshots", "state_snapshot_entries", "current_state", "memberships", "forward_extremities", "event_auth_edges", "event_types", "event_state_keys"} {
		var n int
		if err := db.QueryRow(context.Background(), "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out += fmt.Sprintf("%s=%d ", table, n)
	}
	pos, err := storage.CurrentStreamPosition(context.Background(), db, "events")
	if err != nil {
		t.Fatal(err)
	}
	return out + fmt.Sprintf("pos=%d", pos)
}

func TestMembershipTransitions(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		s := newTestServer(t, db)
		private := mustCreate(t, s, CreateRoomRequest{Preset: PresetPrivateChat})
		public := mustCreate(t, s, CreateRoomRequest{Preset: PresetPublicChat})

		refused := func(name string, err error) {
			t.Helper()
			var rule *auth.RuleError
			if !errors.Is(err, ErrNotAllowed) {
				t.Errorf("%s: got %v, want ErrNotAllowed", name, err)
			} else if !errors.As(err, &rule) && !errors.Is(err, ErrNotAllowed) {
				t.Errorf("%s: no rule in %v", name, err)
			}
		}
		ok := func(name string, _ *event.Event, err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}

		before := countRows(t, db)
		_, err := s.Join(ctx, private, bob)
		refused("uninvited join", err)
		_, err = sendMessage(ctx, s, private, bob, "let me in")
		refused("message from non-member", err)
		_, err = s.Invite(ctx, private, bob, carol, "", false)
		refused("invite from non-member", err)
		if after := countRows(t, db); after != before {
			t.Errorf("refused events left a trace:\n%s\n%s", before, after)
		}

		ev, err := s.Join(ctx, public, bob)
		ok("join public", ev, err)
		ev, err = s.Invite(ctx, private, alice, bob, "", false)
		ok("invite", ev, err)
		ev, err = s.Join(ctx, private, bob)
		ok("invited join", ev, err)
		_, err = s.Kick(ctx, private, bob, alice, "")
		refused("kick of a higher power", err)
		_, err = s.Ban(ctx, private, bob, alice, "")
		refused("ban of a higher power", err)
		ev, err = s.Ban(ctx, private, alice, bob, "spam")
		ok("ban", ev, err)
		if m, _ := s.Membership(ctx, private, bob); m != "ban" {
			t.Errorf("bob is %q after ban", m)
		}
		_, err = s.Join(ctx, private, bob)
		refused("banned join", err)
		_, err = s.Kick(ctx, private, alice, bob, "")
		refused("kick of a banned user", err)
		ev, err = s.Unban(ctx, private, alice, bob, "")
		ok("unban", ev, err)
		_, err = s.Unban(ctx, private, alice, bob, "")
		refused("unban of a user not banned", err)
		_, err = s.Join(ctx, private, bob)
		refused("join after unban without invite", err)
		ev, err = s.Invite(ctx, private, alice, bob, "", false)
		ok("re-invite", ev, err)
		ev, err = s.Leave(ctx, private, bob, "")
		ok("reject invite", ev, err)
		ev, err = s.Kick(ctx, public, alice, bob, "")
		ok("kick", ev, err)
		if m, _ := s.Membership(ctx, public, bob); m != "leave" {
			t.Errorf("bob is %q after kick", m)
		}
		_, err = s.Knock(ctx, private, carol, "")
		refused("knock on invite-only room", err)
		_, err = s.Join(ctx, "!unknown:elsewhere.org", bob)
		if !errors.Is(err, ErrRemoteJoinUnsupported) {
			t.Errorf("remote join: %v", err)
		}

		knock := mustCreate(t, s, CreateRoomRequest{InitialState: []StateEvent{{Type: "m.room.join_rules", Content: json.RawMessage(`{"join_rule":"knock"}`)}}})
		ev, err = s.Knock(ctx, knock, carol, "please")
		ok("knock", ev, err)
		if m, _ := s.Membership(ctx, knock, carol); m != "knock" {
			t.Errorf("carol is %q after knocking", m)
		}
		ev, err = s.Invite(ctx, knock, alice, carol, "", false)
		ok("invite knocker", ev, err)
		ev, err = s.Join(ctx, knock, carol)
		ok("knocker joins", ev, err)
	})
}

func TestMessageReusesSnapshot(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		s := newTestServer(t, db)
		roomID := mustCreate(t, s, CreateRoomRequest{Preset: PresetPublicChat})
		for _, u := range []string{bob, carol} {
			if _, err := s.Join(ctx, roomID, u); err != nil {
				t.Fatal(err)
			}
		}
		countEntries := func() (snaps, entries int) {
			_ = db.QueryRow(ctx, "SELECT COUNT(*) FROM state_snapshots").Scan(&snaps)
			_ = db.QueryRow(ctx, "SELECT COUNT(*) FROM state_snapshot_entries").Scan(&entries)
			return
		}
		s0, e0 := countEntries()
		room, err := storage.GetRoom(ctx, db, roomID)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			ev, err := sendMessage(ctx, s, roomID, bob, fmt.Sprint("hello ", i))
			if err != nil {
				t.Fatal(err)
			}
			rec, err := storage.EventByID(ctx, db, ev.ID())
			if err != nil {
				t.Fatal(err)
			}
			if rec.StateBefore != room.CurrentSnapshot || rec.StateAfter != room.CurrentSnapshot {
				t.Errorf("message state %d/%d, room state %d", rec.StateBefore, rec.StateAfter, room.CurrentSnapshot)
			}
		}
		if s1, e1 := countEntries(); s1 != s0 || e1 != e0 {
			t.Errorf("messages wrote state: snapshots %d->%d, entries %d->%d", s0, s1, e0, e1)
		}
		// A state event adds one snapshot of one entry.
		if _, err := s.SendEvent(ctx, event.Proto{Type: "m.room.name", StateKey: new(string), Sender: alice, RoomID: roomID,
			Content: json.RawMessage(`{"name":"n"}`)}); err != nil {
			t.Fatal(err)
		}
		if s1, e1 := countEntries(); s1 != s0+1 || e1 != e0+1 {
			t.Errorf("state event wrote snapshots %d->%d, entries %d->%d", s0, s1, e0, e1)
		}
		state, err := s.CurrentState(ctx, roomID)
		if err != nil {
			t.Fatal(err)
		}
		room, _ = storage.GetRoom(ctx, db, roomID)
		snapState, err := storage.SnapshotState(ctx, db, room.CurrentSnapshot)
		if err != nil {
			t.Fatal(err)
		}
		if len(state) != len(snapState) {
			t.Errorf("current state has %d entries, its snapshot %d", len(state), len(snapState))
		}
		members, err := s.Members(ctx, roomID, "join")
		if err != nil || len(members) != 3 {
			t.Errorf("members %v %v", members, err)
		}
	})
}

func TestForwardExtremitiesAndConcurrency(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		s := newTestServer(t, db)
		rooms := []string{
			mustCreate(t, s, CreateRoomRequest{Preset: PresetPublicChat}),
			mustCreate(t, s, CreateRoomRequest{Preset: PresetPublicChat}),
		}
		var heard sync.Map
		unsub := s.Subscribe(func(n NewEvent) { heard.Store(n.Event.ID(), n.StreamPos) })
		defer unsub()
		const writers, perWriter = 4, 15
		var wg sync.WaitGroup
		errs := make(chan error, 2*writers*perWriter)
		for _, roomID := range rooms {
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range perWriter {
						if _, err := sendMessage(ctx, s, roomID, alice, fmt.Sprint(w, "/", i)); err != nil {
							errs <- err
						}
					}
				}()
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for _, roomID := range rooms {
			room, _ := storage.GetRoom(ctx, db, roomID)
			recs, err := storage.RoomEventsByStream(ctx, db, room.NID, 0, 1<<62, 1000, false)
			if err != nil {
				t.Fatal(err)
			}
			var prev *storage.EventRecord
			for i := range recs {
				rec := &recs[i]
				if prev != nil {
					if rec.Depth <= prev.Depth {
						t.Fatalf("depth %d after %d", rec.Depth, prev.Depth)
					}
					ev, _ := s.parse(*rec)
					if p := ev.PrevEventIDs(); len(p) != 1 || p[0] != prev.EventID {
						t.Fatalf("event %s cites %v, want [%s]", rec.EventID, p, prev.EventID)
					}
				}
				if _, ok := heard.Load(rec.EventID); !ok && rec.Type == "m.room.message" {
					t.Errorf("subscriber did not hear %s", rec.EventID)
				}
				prev = rec
			}
			ext, err := storage.ForwardExtremities(ctx, db, room.NID)
			if err != nil || len(ext) != 1 || ext[0] != prev.NID {
				t.Errorf("forward extremities %v (%v), want [%d]", ext, err, prev.NID)
			}
			if got := len(recs); got < writers*perWriter {
				t.Errorf("%d events in room", got)
			}
		}
	})
}

func TestRedact(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		s := newTestServer(t, db)
		roomID := mustCreate(t, s, CreateRoomRequest{Preset: PresetPublicChat})
		for _, u := range []string{bob, carol} {
			if _, err := s.Join(ctx, roomID, u); err != nil {
				t.Fatal(err)
			}
		}
		msg, err := sendMessage(ctx, s, roomID, bob, "oops")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Redact(ctx, roomID, carol, msg.ID(), ""); !errors.Is(err, ErrNotAllowed) {
			t.Errorf("carol redacts bob's message: %v", err)
		}
		if _, err := s.Redact(ctx, roomID, bob, msg.ID(), "typo"); err != nil {
			t.Errorf("bob redacts his message: %v", err)
		}
		if _, err := s.Redact(ctx, roomID, alice, msg.ID(), ""); err != nil {
			t.Errorf("alice (moderator) redacts: %v", err)
		}
		if _, err := s.Redact(ctx, roomID, alice, "$nothing", ""); !errors.Is(err, ErrNotFound) {
			t.Errorf("redact unknown event: %v", err)
		}
	})
}
