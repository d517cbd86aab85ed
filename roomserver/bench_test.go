package roomserver

import (
	"context"
	"fmt"
	"sync/atomic"
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
			// The search index is written after the events, in batches: its cost is part of
			// the input's.
			if err := s.SearchIndexed(ctx); err != nil {
				b.Fatal(err)
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

// BenchmarkSendMessageConcurrent sends messages into one room of 10 members from 10 goroutines
// at once, as ten clients would: sends that queue behind a commit are committed together.
func BenchmarkSendMessageConcurrent(b *testing.B) {
	ctx := context.Background()
	db := storagetest.OpenTestDB(b, storage.SQLite)
	s := newTestServer(b, db)
	roomID := mustCreate(b, s, CreateRoomRequest{Preset: PresetPublicChat})
	joinMany(b, s, roomID, 9)
	b.ReportAllocs()
	b.SetParallelism(5) // 10 goroutines on 2 CPUs
	b.ResetTimer()
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := sendMessage(ctx, s, roomID, alice, fmt.Sprint("message ", n.Add(1))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	if err := s.SearchIndexed(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
