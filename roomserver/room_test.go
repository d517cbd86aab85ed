package roomserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"myelin/keys"
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

// In room versions 1 and 2, prev_events and auth_events carry each event's reference hash.
func TestV1ReferenceHashes(t *testing.T) {
	db := storagetest.OpenTestDB(t, storage.SQLite)
	ctx := context.Background()
	s := newTestServer(t, db)
	roomID := mustCreate(t, s, CreateRoomRequest{RoomVersion: "1", Preset: PresetPublicChat})
	ev, err := sendMessage(ctx, s, roomID, alice, "hello")
	if err != nil {
		t.Fatal(err)
	}
	var pdu struct {
		Prev [][]json.RawMessage `json:"prev_events"`
		Auth [][]json.RawMessage `json:"auth_events"`
	}
	if err := json.Unmarshal(ev.JSON(), &pdu); err != nil {
		t.Fatal(err)
	}
	if len(pdu.Prev) == 0 || len(pdu.Auth) == 0 {
		t.Fatalf("no prev or auth events: %s", ev.JSON())
	}
	for _, ref := range append(pdu.Prev, pdu.Auth...) {
		var id string
		var hashes struct {
			SHA256 string `json:"sha256"`
		}
		if len(ref) != 2 || json.Unmarshal(ref[0], &id) != nil || json.Unmarshal(ref[1], &hashes) != nil {
			t.Fatalf("malformed reference %s", ref)
		}
		target, err := s.Event(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		h, err := target.ReferenceHash()
		if err != nil {
			t.Fatal(err)
		}
		if hashes.SHA256 != keys.EncodeBase64(h[:]) {
			t.Fatalf("reference to %s carries hash %q, want %q", id, hashes.SHA256, keys.EncodeBase64(h[:]))
		}
	}
}
