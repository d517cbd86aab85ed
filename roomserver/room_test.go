package roomserver

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"myelin/storage"
	"myelin/storage/storagetest"
)

// The per-room slots do not grow without bound: asking about rooms that do not exist leaves
// nothing behind, and idle known rooms are evicted beyond maxIdleRooms and reload correctly.
func TestRoomSlotsBounded(t *testing.T) {
	db := storagetest.OpenTestDB(t, storage.SQLite)
	ctx := context.Background()
	s := newTestServer(t, db)
	roomID := mustCreate(t, s, CreateRoomRequest{Preset: PresetPublicChat})

	for i := range 1000 {
		if _, err := sendMessage(ctx, s, fmt.Sprintf("!nope%d:example.org", i), alice, "hi"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("send to an unknown room: %v", err)
		}
	}
	s.mu.Lock()
	n := len(s.rooms)
	s.mu.Unlock()
	if n > 1 {
		t.Fatalf("%d room slots after asking about unknown rooms", n)
	}

	// Fill the cache with idle slots used after the real room, then touch an unknown room:
	// eviction brings the map back under the bound, dropping the least recently used room
	// first, and that room works again afterwards, its state read back from storage.
	s.mu.Lock()
	for i := range maxIdleRooms {
		s.useClock++
		s.rooms[fmt.Sprintf("!idle%d:example.org", i)] = &roomSlot{lock: make(chan struct{}, 1), state: &roomState{}, lastUse: s.useClock}
	}
	s.mu.Unlock()
	if _, err := sendMessage(ctx, s, "!nope:example.org", alice, "hi"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("send to an unknown room: %v", err)
	}
	s.mu.Lock()
	n, cached := len(s.rooms), s.rooms[roomID] != nil
	s.mu.Unlock()
	if n > maxIdleRooms*9/10 || cached {
		t.Fatalf("after eviction: %d room slots, least recently used room cached: %v", n, cached)
	}
	if _, err := sendMessage(ctx, s, roomID, alice, "after eviction"); err != nil {
		t.Fatal(err)
	}
}
