package pusher

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"testing"

	"github.com/sirupsen/logrus"

	"myelin/keys"
	"myelin/push"
	"myelin/roomserver"
	"myelin/roomserver/event"
	"myelin/storage"
	"myelin/storage/storagetest"
)

type nopWaker struct{}

func (nopWaker) UserChanged(...string) {}

// BenchmarkRecordMessages measures what the notification worker adds to each message: read
// it, evaluate the default push rules of the nine other local members of a room of ten (each
// of whom it notifies) and record the actions, on SQLite. events-per-batch=1 is sequential
// traffic, one transaction per message; 10 is what lingering (worker.go) makes of a stream.
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
			w := New(Config{ServerName: "bench.test", DB: db, Rules: push.NewStore(db), Waker: nopWaker{}}, logrus.NewEntry(log))
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
				next, users, _, err := w.processBatch(ctx, pos, false, false)
				if err != nil {
					b.Fatal(err)
				}
				if len(users) != 10 || next-pos != int64(perBatch) {
					b.Fatalf("batch after %d: %d events, %d users with changes", pos, next-pos, len(users))
				}
				pos = next
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
