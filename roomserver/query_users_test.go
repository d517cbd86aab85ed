package roomserver

import (
	"context"
	"slices"
	"testing"

	"myelin/storage"
	"myelin/storage/storagetest"
)

func TestSharedRoomUsersAndMembershipChanges(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		s := newTestServer(t, db)
		const dave = "@dave:example.org"
		one := mustCreate(t, s, CreateRoomRequest{Preset: "public_chat"})
		two := mustCreate(t, s, CreateRoomRequest{Creator: carol, Preset: "public_chat"})
		pos := func() int64 {
			p, err := storage.CurrentStreamPosition(ctx, db, "events")
			if err != nil {
				t.Fatal(err)
			}
			return p
		}
		before := pos()
		for _, j := range []struct{ room, user string }{{one, bob}, {two, bob}, {two, dave}} {
			if _, err := s.JoinVia(ctx, j.room, j.user, "", nil); err != nil {
				t.Fatal(err)
			}
		}
		shared, err := s.SharedRoomUsers(ctx, bob)
		if err != nil || !slices.Equal(shared, []string{alice, carol, dave}) {
			t.Fatalf("bob shares rooms with %v (%v), want alice, carol, dave", shared, err)
		}
		if shared, _ := s.SharedRoomUsers(ctx, alice); !slices.Equal(shared, []string{bob}) {
			t.Fatalf("alice shares rooms with %v, want bob", shared)
		}

		changes, err := s.SharedMembershipChanges(ctx, alice, before, pos())
		if err != nil || len(changes) != 1 || changes[0].UserID != bob || !changes[0].Changed || changes[0].OwnChanged {
			t.Fatalf("alice's changes %+v (%v), want bob's join", changes, err)
		}
		mid := pos()
		if _, err := s.Leave(ctx, one, bob, ""); err != nil {
			t.Fatal(err)
		}
		changes, err = s.SharedMembershipChanges(ctx, bob, mid, pos())
		if err != nil || len(changes) != 1 || changes[0].UserID != alice || !changes[0].OwnChanged || changes[0].Own != "leave" {
			t.Fatalf("bob's changes after leaving: %+v (%v)", changes, err)
		}
		if changes, _ := s.SharedMembershipChanges(ctx, dave, mid, pos()); len(changes) != 0 {
			t.Fatalf("dave's changes: %+v, want none", changes)
		}

		if err := s.LeaveAllRooms(ctx, bob); err != nil {
			t.Fatal(err)
		}
		if rooms, _ := s.JoinedRooms(ctx, bob); len(rooms) != 0 {
			t.Fatalf("bob is still in %v", rooms)
		}
	})
}

// TestParticipating: the server takes part in a room exactly while one of its users is joined;
// a user of a server whose name is a suffix of ours does not count.
func TestParticipating(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		s := newTestServer(t, db)
		room := mustCreate(t, s, CreateRoomRequest{Preset: "public_chat"})
		if ok, err := s.participating(ctx, room); err != nil || !ok {
			t.Fatalf("participating with alice joined: %v, %v", ok, err)
		}
		if ok, err := storage.RoomHasJoinedMemberOn(ctx, db, room, "org"); err != nil || ok {
			t.Fatalf("a server named by a suffix counted: %v, %v", ok, err)
		}
		if _, err := s.Leave(ctx, room, alice, ""); err != nil {
			t.Fatal(err)
		}
		if ok, err := s.participating(ctx, room); err != nil || ok {
			t.Fatalf("participating after the last local user left: %v, %v", ok, err)
		}
	})
}
