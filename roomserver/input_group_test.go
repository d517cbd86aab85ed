package roomserver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"myelin/roomserver/event"
	"myelin/storage"
	"myelin/storage/storagetest"
)

// TestGroupCommit: sends queued behind a busy room commit together; an event whose also fails
// fails alone, and one the auth rules refuse fails alone, while the others are stored.
func TestGroupCommit(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		s := newTestServer(t, db)
		roomID := mustCreate(t, s, CreateRoomRequest{Preset: PresetPublicChat})
		const n = 10
		boom := errors.New("boom")

		// Hold the room's lock so that every send queues, then let them all go at once.
		_, unlock, err := s.lockRoom(ctx, roomID)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make([]error, n)
		ids := make([]string, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sender := alice
				if i == 7 {
					sender = "@stranger:example.org" // not in the room: refused by auth
				}
				content := mustJSON(map[string]any{"msgtype": "m.text", "body": fmt.Sprint(i)})
				ev, err := s.SendEventAlso(ctx, event.Proto{Type: "m.room.message", Sender: sender, RoomID: roomID, Content: content},
					func(ctx context.Context, tx *storage.Tx, ev *event.Event) error {
						if i == 3 {
							return boom
						}
						return nil
					})
				errs[i] = err
				if ev != nil {
					ids[i] = ev.ID()
				}
			}()
		}
		for { // wait until all ten are queued
			s.mu.Lock()
			queued := len(s.rooms[roomID].queue)
			s.mu.Unlock()
			if queued == n {
				break
			}
			time.Sleep(time.Millisecond)
		}
		unlock()
		wg.Wait()

		for i, err := range errs {
			switch i {
			case 3:
				if !errors.Is(err, boom) || ids[i] != "" {
					t.Errorf("send %d: %v %q, want its also's error and no event", i, err, ids[i])
				}
			case 7:
				if !errors.Is(err, ErrNotAllowed) || ids[i] != "" {
					t.Errorf("send %d: %v %q, want ErrNotAllowed and no event", i, err, ids[i])
				}
			default:
				if err != nil || ids[i] == "" {
					t.Errorf("send %d: %v", i, err)
					continue
				}
				if _, err := storage.EventByID(ctx, db, ids[i]); err != nil {
					t.Errorf("send %d: event %s not stored: %v", i, ids[i], err)
				}
			}
		}
		// The room still takes events, and its extremities are one event.
		ev, err := sendMessage(ctx, s, roomID, alice, "after")
		if err != nil {
			t.Fatal(err)
		}
		if len(ev.PrevEventIDs()) != 1 {
			t.Errorf("prev events after the group: %v", ev.PrevEventIDs())
		}
	})
}
