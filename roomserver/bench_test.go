package roomserver

import (
	"context"
	"fmt"
	"testing"

	"myelin/storage"
	"myelin/storage/storagetest"
)

// BenchmarkSendMessage measures sequential input of local messages into rooms of growing
// membership on SQLite. The cost per message should not grow with the membership: a message
// reuses its room's state snapshot and auth reads come from the room's cached state.
func BenchmarkSendMessage(b *testing.B) {
	for _, members := range []int{10, 10000} {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) {
			ctx := context.Background()
			db := storagetest.OpenTestDB(b, storage.SQLite)
			s := newTestServer(b, db)
			roomID := mustCreate(b, s, CreateRoomRequest{Preset: PresetPublicChat})
			joinMany(b, s, roomID, members-1)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if _, err := sendMessage(ctx, s, roomID, alice, fmt.Sprint("message ", i)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// joinMany joins n users, many per transaction to keep set-up short.
func joinMany(tb testing.TB, s *Server, roomID string, n int) {
	ctx := context.Background()
	const perCommit = 500
	for done := 0; done < n; done += perCommit {
		err := s.withRoom(ctx, roomID, func(w *roomWork) error {
			for i := done; i < min(n, done+perCommit); i++ {
				u := fmt.Sprintf("@user%d:example.org", i)
				if _, err := s.addLocal(ctx, w, memberProto(u, u, "join", "", nil)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
}
