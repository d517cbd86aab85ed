package roomserver

import (
	"context"
	"testing"

	"myelin/storage"
	"myelin/storage/storagetest"
)

// TestSearchIndexer: messages reach the search index through the indexer, once each, and a
// redaction removes an event's text whether it comes before or after the indexer reads it.
func TestSearchIndexer(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		s := newTestServer(t, db)
		roomID := mustCreate(t, s, CreateRoomRequest{Preset: PresetPublicChat, Name: "Orchard"})
		count := func(word string) int {
			t.Helper()
			room, err := storage.GetRoom(ctx, db, roomID)
			if err != nil {
				t.Fatal(err)
			}
			n, err := storage.SearchCount(ctx, db, storage.SearchQuery{Words: []string{word}, Rooms: []storage.SearchRoom{{Room: room.NID}}})
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		send := func(body string) string {
			t.Helper()
			ev, err := sendMessage(ctx, s, roomID, alice, body)
			if err != nil {
				t.Fatal(err)
			}
			return ev.ID()
		}

		send("apple pie")
		if n := count("apple"); n != 0 {
			t.Fatalf("indexed before the indexer ran: %d hits", n)
		}
		if err := s.SearchIndexed(ctx); err != nil {
			t.Fatal(err)
		}
		if n := count("apple"); n != 1 {
			t.Fatalf("after indexing: %d hits for apple, want 1", n)
		}
		if err := s.SearchIndexed(ctx); err != nil { // nothing new: nothing indexed twice
			t.Fatal(err)
		}
		if n := count("apple"); n != 1 {
			t.Fatalf("after indexing again: %d hits for apple, want 1", n)
		}

		// Redacted before the indexer reads it: never indexed.
		early := send("pear tart")
		if _, err := s.Redact(ctx, roomID, alice, early, ""); err != nil {
			t.Fatal(err)
		}
		// Redacted after: removed.
		late := send("plum jam")
		if err := s.SearchIndexed(ctx); err != nil {
			t.Fatal(err)
		}
		if n := count("plum"); n != 1 {
			t.Fatalf("%d hits for plum, want 1", n)
		}
		if _, err := s.Redact(ctx, roomID, alice, late, ""); err != nil {
			t.Fatal(err)
		}
		if err := s.SearchIndexed(ctx); err != nil {
			t.Fatal(err)
		}
		for _, word := range []string{"pear", "plum"} {
			if n := count(word); n != 0 {
				t.Errorf("%d hits for the redacted %q", n, word)
			}
		}
		if n := count("orchard"); n != 1 { // the room name, a state event, goes the same way
			t.Errorf("%d hits for the room name, want 1", n)
		}
	})
}
