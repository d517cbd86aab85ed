package federation

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"myelin/roomserver/event"
	"myelin/storage"
	"myelin/storage/storagetest"
)

// An invite is not sent in a transaction to the invitee's server when no one of it is in the
// room (the invite API delivered it), while a ban still reaches the banned user's server.
func TestSenderSendsNoInviteToServersOutsideTheRoom(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		r := newSenderRoom(t, db)
		remote := newFakeRemote(0)
		runSender(t, r, remote, time.Millisecond, time.Second)
		for _, m := range []struct{ user, membership string }{
			{"@dan:third.test", "invite"},
			{"@erin:fourth.test", "ban"},
		} {
			target := m.user
			_, err := r.rooms.SendEvent(context.Background(), event.Proto{Type: "m.room.member", StateKey: &target,
				Sender: "@alice:local.test", RoomID: r.roomID, Content: json.RawMessage(`{"membership":"` + m.membership + `"}`)})
			if err != nil {
				t.Fatalf("%s of %s: %v", m.membership, m.user, err)
			}
		}
		r.send(t, "after")
		waitFor(t, "delivery to remote.test", 20*time.Second, func() bool {
			got, _ := remote.delivered("remote.test")
			return len(got) == 3
		})
		waitFor(t, "the ban at fourth.test", 20*time.Second, func() bool {
			got, _ := remote.delivered("fourth.test")
			return len(got) == 1
		})
		for _, a := range remote.snapshot() {
			if a.destination == "third.test" {
				t.Fatalf("the invitee's server got a transaction of %d PDUs", len(a.bodies))
			}
		}
	})
}
