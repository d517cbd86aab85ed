package roomserver

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"myelin/keys"
	"myelin/roomserver/auth"
	"myelin/roomserver/event"
	"myelin/storage"
	"myelin/storage/storagetest"
)

func TestFederationQueries(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		s := newTestServer(t, db)
		roomID := mustCreate(t, s, CreateRoomRequest{Preset: PresetPublicChat, RoomVersion: "10"})
		setVisibility := func(v string) {
			t.Helper()
			if _, err := s.SendEvent(ctx, event.Proto{Type: typeHistoryVisibility, StateKey: new(string), Sender: alice, RoomID: roomID,
				Content: json.RawMessage(`{"history_visibility":"` + v + `"}`)}); err != nil {
				t.Fatal(err)
			}
		}
		setVisibility(VisibilityJoined)
		before, _ := sendMessage(ctx, s, roomID, alice, "before")

		key, _ := keys.GenerateSigningKey()
		remote := remoteServer{t: t, name: "remote.org", key: key, v: event.MustVersion("10"), room: roomID}
		const rbob = "@bob:remote.org"
		tmpl, err := s.MakeMembership(ctx, roomID, rbob, "join")
		if err != nil {
			t.Fatal(err)
		}
		var p struct {
			PrevEvents []string        `json:"prev_events"`
			AuthEvents []string        `json:"auth_events"`
			Depth      int64           `json:"depth"`
			Origin     string          `json:"origin"`
			Content    json.RawMessage `json:"content"`
		}
		if err := json.Unmarshal(tmpl.Event, &p); err != nil || p.Origin != "example.org" || len(p.PrevEvents) != 1 || p.Depth == 0 {
			t.Fatalf("template %s: %v", tmpl.Event, err)
		}
		sk := rbob
		join, err := event.Build(event.Proto{Type: auth.TypeMember, StateKey: &sk, Sender: rbob, RoomID: roomID, Content: p.Content,
			PrevEvents: p.PrevEvents, AuthEvents: p.AuthEvents, Depth: p.Depth, OriginServerTS: 1}, remote.v, remote.name, remote.key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.AcceptRemoteMembership(ctx, join, "leave"); !errors.Is(err, ErrInvalid) {
			t.Errorf("join accepted as a leave: %v", err)
		}
		if _, err := s.AcceptRemoteMembership(ctx, join, "join"); err != nil {
			t.Fatal(err)
		}
		after, _ := sendMessage(ctx, s, roomID, alice, "after")

		visible := func(server string, evs ...*event.Event) int {
			t.Helper()
			got, err := s.ServerVisibleEvents(ctx, server, evs)
			if err != nil {
				t.Fatal(err)
			}
			return len(got)
		}
		if visible("remote.org", before) != 0 || visible("remote.org", after) != 1 || visible("remote.org", join) != 1 {
			t.Errorf("joined visibility for remote.org wrong")
		}
		if visible("nobody.org", after) != 0 {
			t.Errorf("a server without members sees the room")
		}
		setVisibility(VisibilityShared)
		shared, _ := sendMessage(ctx, s, roomID, alice, "shared")
		if visible("remote.org", shared) != 1 || visible("nobody.org", shared) != 0 {
			t.Errorf("shared visibility wrong")
		}
		setVisibility(VisibilityWorldReadable)
		world, _ := sendMessage(ctx, s, roomID, alice, "world")
		if visible("nobody.org", world) != 1 {
			t.Errorf("world_readable not visible")
		}

		// Backfill and get_missing_events walk prev_events.
		bf, err := s.Backfill(ctx, roomID, []string{world.ID()}, 3)
		if err != nil || len(bf) != 3 || bf[2].ID() != world.ID() {
			t.Fatalf("backfill: %v, %d", err, len(bf))
		}
		missing, err := s.MissingEvents(ctx, roomID, []string{after.ID()}, []string{world.ID()}, 10, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range missing {
			if ev.ID() == after.ID() || ev.ID() == world.ID() || ev.ID() == before.ID() {
				t.Errorf("get_missing_events went past earliest or returned latest: %s", ev.ID())
			}
		}
		if len(missing) != 3 { // the two visibility changes and the message between them
			t.Errorf("missing events: %d, want 3", len(missing))
		}
		state, chain, err := s.StateForFederation(ctx, roomID, after.ID())
		if err != nil || len(state) == 0 || len(chain) == 0 {
			t.Errorf("state for federation: %v", err)
		}
		if _, _, err := s.StateForFederation(ctx, "!other:example.org", after.ID()); !errors.Is(err, ErrNotFound) {
			t.Errorf("state of an event in another room: %v", err)
		}

		// An outlier: an event whose prev events are unknown, checked by its auth events.
		pl, _ := s.CurrentStateEvent(ctx, roomID, auth.TypePowerLevels, "")
		create, _ := s.CurrentStateEvent(ctx, roomID, auth.TypeCreate, "")
		orphan, err := event.Build(event.Proto{Type: "m.room.message", Sender: rbob, RoomID: roomID, Content: json.RawMessage(`{"body":"?"}`),
			PrevEvents: []string{"$unknown"}, AuthEvents: []string{create.ID(), pl.ID(), join.ID()}, Depth: 99, OriginServerTS: 1}, remote.v, remote.name, remote.key)
		if err != nil {
			t.Fatal(err)
		}
		if st, err := s.InputOutlier(ctx, orphan); st != Accepted || err != nil {
			t.Fatalf("outlier: %d %v", st, err)
		}
		rec, _ := storage.EventByID(ctx, db, orphan.ID())
		if !rec.Outlier || rec.StreamPos != 0 {
			t.Errorf("outlier stored as %+v", rec)
		}
		if visible("remote.org", orphan) != 0 {
			t.Errorf("an outlier is visible")
		}
		if _, _, err := s.StateForFederation(ctx, roomID, orphan.ID()); !errors.Is(err, ErrStateUnknown) {
			t.Errorf("state at an outlier: %v", err)
		}
	})
}

func TestRestrictedJoinVia(t *testing.T) {
	db := storagetest.OpenTestDB(t, storage.SQLite)
	ctx := context.Background()
	s := newTestServer(t, db)
	space := mustCreate(t, s, CreateRoomRequest{Preset: PresetPublicChat, RoomVersion: "10"})
	restricted := mustCreate(t, s, CreateRoomRequest{RoomVersion: "10", InitialState: []StateEvent{{Type: auth.TypeJoinRules,
		Content: json.RawMessage(`{"join_rule":"restricted","allow":[{"type":"m.room_membership","room_id":"` + space + `"}]}`)}}})
	unknown := mustCreate(t, s, CreateRoomRequest{RoomVersion: "10", InitialState: []StateEvent{{Type: auth.TypeJoinRules,
		Content: json.RawMessage(`{"join_rule":"restricted","allow":[{"type":"m.room_membership","room_id":"!elsewhere:remote.org"}]}`)}}})
	const rbob = "@bob:remote.org"
	if _, err := s.MakeMembership(ctx, restricted, rbob, "join"); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("not in the allowed room: %v", err)
	}
	if _, err := s.MakeMembership(ctx, unknown, rbob, "join"); !errors.Is(err, ErrUnableToAuthoriseJoin) {
		t.Errorf("allowed room unknown: %v", err)
	}
	// Bob joins the space (as remote.org would, through input).
	key, _ := keys.GenerateSigningKey()
	tmpl, err := s.MakeMembership(ctx, space, rbob, "join")
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		PrevEvents []string `json:"prev_events"`
		AuthEvents []string `json:"auth_events"`
		Depth      int64    `json:"depth"`
	}
	_ = json.Unmarshal(tmpl.Event, &p)
	sk := rbob
	join, _ := event.Build(event.Proto{Type: auth.TypeMember, StateKey: &sk, Sender: rbob, RoomID: space, Content: json.RawMessage(`{"membership":"join"}`),
		PrevEvents: p.PrevEvents, AuthEvents: p.AuthEvents, Depth: p.Depth, OriginServerTS: 1}, event.MustVersion("10"), "remote.org", key)
	if _, err := s.AcceptRemoteMembership(ctx, join, "join"); err != nil {
		t.Fatal(err)
	}
	tmpl, err = s.MakeMembership(ctx, restricted, rbob, "join")
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Content struct {
			Via string `json:"join_authorised_via_users_server"`
		} `json:"content"`
	}
	if _ = json.Unmarshal(tmpl.Event, &c); c.Content.Via != alice {
		t.Errorf("template %s: want alice as authoriser", tmpl.Event)
	}
}

func TestRemoteInvites(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		s := newTestServer(t, db)
		key, _ := keys.GenerateSigningKey()
		v := event.MustVersion("10")
		carol := "@carol:example.org"
		inv, _ := event.Build(event.Proto{Type: auth.TypeMember, StateKey: &carol, Sender: "@bob:remote.org", RoomID: "!room:remote.org",
			Content: json.RawMessage(`{"membership":"invite"}`), PrevEvents: []string{"$p"}, AuthEvents: []string{"$a"}, Depth: 3, OriginServerTS: 1}, v, "remote.org", key)
		var heard []NewEvent
		defer s.Subscribe(func(n NewEvent) { heard = append(heard, n) })()
		signed, err := s.ReceiveInvite(ctx, inv, json.RawMessage(`[{"type":"m.room.name"}]`))
		if err != nil {
			t.Fatal(err)
		}
		if signed.ID() != inv.ID() || len(heard) != 1 {
			t.Errorf("signed %s, heard %d", signed.ID(), len(heard))
		}
		got, err := s.RemoteInvites(ctx, carol, 0, 0)
		if err != nil || len(got) != 1 || got[0].Event.ID() != inv.ID() || string(got[0].InviteState) != `[{"type":"m.room.name"}]` {
			t.Fatalf("remote invites %+v %v", got, err)
		}
		if later, _ := s.RemoteInvites(ctx, carol, got[0].StreamPos, 0); len(later) != 0 {
			t.Errorf("invites after its position: %d", len(later))
		}
		if err := s.ForgetRemoteInvite(ctx, carol, "!room:remote.org"); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.RemoteInvites(ctx, carol, 0, 0); len(got) != 0 {
			t.Errorf("forgotten invite still there")
		}
		dave := "@dave:remote.org"
		notOurs, _ := event.Build(event.Proto{Type: auth.TypeMember, StateKey: &dave, Sender: "@bob:remote.org", RoomID: "!room:remote.org",
			Content: json.RawMessage(`{"membership":"invite"}`), Depth: 3, OriginServerTS: 1}, v, "remote.org", key)
		if _, err := s.ReceiveInvite(ctx, notOurs, nil); !errors.Is(err, ErrInvalid) {
			t.Errorf("invite of a remote user: %v", err)
		}
	})
}

func TestInboundTxnStorage(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		if _, err := storage.InboundTxnResponse(ctx, db, "a.org", "1"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("unknown transaction: %v", err)
		}
		err := db.WithTx(ctx, func(tx *storage.Tx) error {
			if err := tx.InsertInboundTxn(ctx, "a.org", "1", []byte(`{"pdus":{}}`), 100); err != nil {
				return err
			}
			return tx.InsertInboundTxn(ctx, "a.org", "1", []byte(`{"pdus":{"x":{}}}`), 200)
		})
		if err != nil {
			t.Fatal(err)
		}
		got, err := storage.InboundTxnResponse(ctx, db, "a.org", "1")
		if err != nil || string(got) != `{"pdus":{}}` {
			t.Errorf("first answer kept: %s %v", got, err)
		}
		if _, err := storage.InboundTxnResponse(ctx, db, "b.org", "1"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("transaction ids are per origin: %v", err)
		}
		if err := db.WithTx(ctx, func(tx *storage.Tx) error { return tx.PruneInboundTxns(ctx, 150) }); err != nil {
			t.Fatal(err)
		}
		if _, err := storage.InboundTxnResponse(ctx, db, "a.org", "1"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("pruned transaction: %v", err)
		}
	})
}
