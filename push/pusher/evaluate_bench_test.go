package pusher

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"testing"

	"github.com/sirupsen/logrus"

	"myelin/keys"
	"myelin/push"
	"myelin/roomserver"
	"myelin/roomserver/event"
	"myelin/storage"
	"myelin/storage/storagetest"
)

// lastWaker remembers how many users the last wake-up named.
type lastWaker struct{ n int }

func (l *lastWaker) UserChanged(users ...string) { l.n = len(users) }

// BenchmarkRecordMessages measures what the notification worker adds to each message: read
// it, evaluate the default push rules of the nine other local members of a room of ten (each
// of whom it notifies), record its sender's own read, and write the actions, on SQLite, with
// the flushes of pending actions (pending.go) that the run makes and a last one at its end.
// events-per-batch=1 is sequential traffic; 10 is what lingering (worker.go) makes of a
// stream.
func BenchmarkRecordMessages(b *testing.B) {
	for _, perBatch := range []int{1, 10} {
		b.Run(fmt.Sprintf("events-per-batch=%d", perBatch), func(b *testing.B) {
			ctx := context.Background()
			db := storagetest.OpenTestDB(b, storage.SQLite)
			key, err := keys.GenerateSigningKey()
			if err != nil {
				b.Fatal(err)
			}
			rooms := roomserver.New(db, "bench.test", key, roomserver.Options{})
			alice := "@alice:bench.test"
			roomID, err := rooms.CreateRoom(ctx, roomserver.CreateRoomRequest{Creator: alice, Preset: roomserver.PresetPublicChat})
			if err != nil {
				b.Fatal(err)
			}
			send := func(p event.Proto) {
				p.RoomID = roomID
				if _, err := rooms.SendEvent(ctx, p); err != nil {
					b.Fatal(err)
				}
			}
			for i := range 9 {
				u := fmt.Sprintf("@user%d:bench.test", i)
				send(event.Proto{Type: "m.room.member", StateKey: &u, Sender: u, Content: json.RawMessage(`{"membership":"join"}`)})
			}
			log := logrus.New()
			log.SetOutput(io.Discard)
			waker := &lastWaker{}
			w := New(Config{ServerName: "bench.test", DB: db, Rules: push.NewStore(db), Waker: waker}, logrus.NewEntry(log))
			pos, err := storage.CurrentStreamPosition(ctx, db, "events")
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; done += perBatch {
				b.StopTimer()
				for i := range perBatch {
					send(event.Proto{Type: "m.room.message", Sender: alice,
						Content: json.RawMessage(fmt.Sprintf(`{"msgtype":"m.text","body":"message %d"}`, done+i))})
				}
				b.StartTimer()
				next, err := w.processBatch(ctx, pos, false, false)
				if err != nil {
					b.Fatal(err)
				}
				if waker.n != 10 || next-pos != int64(perBatch) {
					b.Fatalf("batch after %d: %d events, %d users with changes", pos, next-pos, waker.n)
				}
				pos = next
			}
			if _, err := w.processBatch(ctx, pos, true, false); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			if n, err := storage.TotalUnread(ctx, db, "@user0:bench.test", math.MaxInt64); err != nil || n < b.N {
				b.Fatalf("%d of %d messages recorded: %v", n, b.N, err)
			}
		})
	}
}
