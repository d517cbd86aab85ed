package roomserver

import (
	"context"
	"errors"
	"testing"

	"myelin/storage"
	"myelin/storage/storagetest"
)

func TestUpgrade(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		s := newTestServer(t, db)
		for _, tc := range []struct{ from, to string }{{"10", "12"}, {"12", "12"}, {"11", "10"}} {
			t.Run(tc.from+"->"+tc.to, func(t *testing.T) {
				old := mustCreate(t, s, CreateRoomRequest{RoomVersion: tc.from, Preset: PresetPublicChat, Name: "Old", Topic: "t"})
				if _, err := s.Join(ctx, old, bob); err != nil {
					t.Fatal(err)
				}
				if _, err := s.Upgrade(ctx, old, bob, tc.to, nil); !errors.Is(err, ErrNotAllowed) {
					t.Errorf("bob upgrades: %v", err)
				}
				newRoom, err := s.Upgrade(ctx, old, alice, tc.to, nil)
				if err != nil {
					t.Fatalf("upgrade: %v", err)
				}
				if got := stateContent(t, s, old, "m.room.tombstone", "")["replacement_room"]; got != newRoom {
					t.Errorf("tombstone points at %v", got)
				}
				pred, _ := stateContent(t, s, newRoom, "m.room.create", "")["predecessor"].(map[string]any)
				if pred["room_id"] != old {
					t.Errorf("predecessor %v", pred)
				}
				if got := stateContent(t, s, newRoom, "m.room.name", "")["name"]; got != "Old" {
					t.Errorf("name %v", got)
				}
				if got := stateContent(t, s, newRoom, "m.room.join_rules", "")["join_rule"]; got != "public" {
					t.Errorf("join rule %v", got)
				}
				if v, _ := s.RoomVersion(ctx, newRoom); v.ID != tc.to {
					t.Errorf("version %s", v.ID)
				}
				if _, err := sendMessage(ctx, s, old, bob, "still here?"); !errors.Is(err, ErrNotAllowed) {
					t.Errorf("bob talks in the old room: %v", err)
				}
				if _, err := s.Join(ctx, newRoom, bob); err != nil {
					t.Errorf("bob joins the new room: %v", err)
				}
			})
		}
	})
}
