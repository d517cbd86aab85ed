package federation

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"myelin/keys"
	"myelin/roomserver"
	"myelin/roomserver/event"
	"myelin/storage"
	"myelin/storage/storagetest"
)

// TestSenderQuietRoomGetsLoud: in a room without other servers the sender is not woken for
// each message (quiet, issue 9); once a server joins, the first message after it reaches that
// server without waiting for anything else to wake the sender, and what was sent while the
// room was quiet never goes there.
func TestSenderQuietRoomGetsLoud(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		r := newLocalRoom(t, db)
		remote := newFakeRemote(0)
		s, _ := runSender(t, r, remote, time.Millisecond, time.Second)
		room, err := storage.GetRoom(ctx, db, r.roomID)
		if err != nil {
			t.Fatal(err)
		}
		r.send(t, "quiet first")
		waitFor(t, "the room to be quiet", 10*time.Second, func() bool {
			s.quietMu.Lock()
			defer s.quietMu.Unlock()
			return s.quiet[room.NID]
		})
		r.send(t, bodies("quiet", 5)...)

		// A server joins (written into the memberships as newSenderRoom does), and a
		// membership event tells the sender that who is joined may have changed.
		ext, err := storage.ForwardExtremities(ctx, db, room.NID)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.WithTx(ctx, func(tx *storage.Tx) error {
			return tx.SetMembership(ctx, storage.Membership{Room: room.NID, UserID: "@bob:remote.test", Membership: "join", Event: ext[0], StreamPos: 1})
		}); err != nil {
			t.Fatal(err)
		}
		alice := "@alice:local.test"
		if _, err := r.rooms.SendEvent(ctx, event.Proto{Type: "m.room.member", StateKey: &alice, Sender: alice, RoomID: r.roomID,
			Content: json.RawMessage(`{"membership":"join","displayname":"Alice"}`)}); err != nil {
			t.Fatal(err)
		}
		r.send(t, "loud")
		waitFor(t, "the message after the join", 10*time.Second, func() bool {
			got, _ := remote.delivered("remote.test")
			return slices.Contains(got, "loud")
		})
		got, _ := remote.delivered("remote.test")
		for _, b := range got {
			if b != "" && b != "loud" {
				t.Fatalf("remote.test got %q, sent while no other server was in the room", b)
			}
		}
	})
}

// newLocalRoom is a room of local.test with no other server in it.
func newLocalRoom(t *testing.T, db *storage.DB) *senderRoom {
	t.Helper()
	key, err := keys.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	rooms := roomserver.New(db, "local.test", key, roomserver.Options{})
	roomID, err := rooms.CreateRoom(context.Background(), roomserver.CreateRoomRequest{Creator: "@alice:local.test", Preset: roomserver.PresetPublicChat})
	if err != nil {
		t.Fatal(err)
	}
	return &senderRoom{db: db, rooms: rooms, roomID: roomID}
}
