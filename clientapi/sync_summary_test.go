package clientapi

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"myelin/keys"
	"myelin/roomserver"
	"myelin/storage"
	"myelin/storage/storagetest"
)

// The summary of a sync is that of the position the sync answers up to, even when the room
// moved on before the summary was read.
func TestSyncSummaryAtPosition(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		key, err := keys.GenerateSigningKey()
		if err != nil {
			t.Fatal(err)
		}
		const server = "summary.test"
		rs := roomserver.New(db, server, key, roomserver.Options{})
		log := logrus.New()
		log.SetOutput(io.Discard)
		api := New(Config{ServerName: server, DB: db, MaxBodyBytes: 1 << 20, Rooms: rs}, logrus.NewEntry(log))
		h := &syncHandlers{API: api, now: time.Now}
		alice, bob, carol, dave := "@alice:"+server, "@bob:"+server, "@carol:"+server, "@dave:"+server
		room, err := rs.CreateRoom(ctx, roomserver.CreateRoomRequest{Creator: alice, Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		must := func(_ any, err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		must(rs.Join(ctx, room, bob))
		upto, err := storage.CurrentStreamPosition(ctx, db, "events")
		if err != nil {
			t.Fatal(err)
		}
		// The room moves on past upto.
		must(rs.Join(ctx, room, carol))
		must(rs.Leave(ctx, room, bob, ""))
		must(rs.Invite(ctx, room, alice, dave, "", false))
		now, err := storage.CurrentStreamPosition(ctx, db, "events")
		if err != nil {
			t.Fatal(err)
		}

		rooms, err := storage.RoomsOfUserAll(ctx, db, alice)
		if err != nil || len(rooms) != 1 {
			t.Fatalf("rooms of alice: %v %v", rooms, err)
		}
		ur := rooms[0]
		summaryAt := func(pos int64) string {
			w, err := h.window(ctx, Requester{UserID: alice}, ur, 0, pos, syncRequest{})
			if err != nil {
				t.Fatal(err)
			}
			s, err := h.summary(ctx, ur, alice, w, pos)
			if err != nil {
				t.Fatal(err)
			}
			return fmt.Sprintf("joined %d invited %d heroes %v", s.JoinedMemberCount, s.InvitedMemberCount, s.Heroes)
		}
		if got, want := summaryAt(upto), "joined 2 invited 0 heroes [@bob:summary.test]"; got != want {
			t.Errorf("summary at the earlier position = %q, want %q", got, want)
		}
		if got, want := summaryAt(now), "joined 2 invited 1 heroes [@carol:summary.test @dave:summary.test]"; got != want {
			t.Errorf("summary now = %q, want %q", got, want)
		}
	})
}
