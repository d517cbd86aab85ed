package e2e_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"myelin/keys/e2e"
	"myelin/storage"
	"myelin/storage/storagetest"
)

func TestToDevice(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		notes := &recordingNotifier{}
		s := newStore(t, db, e2e.Options{Notifier: notes}, map[string][]string{"alice": {"A1"}, "bob": {"B1", "B2"}})
		alice, bob := uid("alice"), uid("bob")
		send := func(txn string, msgs map[string]map[string]json.RawMessage) {
			t.Helper()
			if err := s.SendToDevice(ctx, alice, "A1", "m.room.encrypted", txn, msgs); err != nil {
				t.Fatal(err)
			}
		}
		send("t1", map[string]map[string]json.RawMessage{bob: {"*": json.RawMessage(`{"n":1}`)}, "@x:remote.test": {"D": json.RawMessage(`{}`)}})
		send("t1", map[string]map[string]json.RawMessage{bob: {"*": json.RawMessage(`{"n":1}`)}}) // a retry: no-op
		send("t2", map[string]map[string]json.RawMessage{bob: {"B2": json.RawMessage(`{"n":2}`), "GONE": json.RawMessage(`{"n":3}`)}})

		b1, _ := s.ToDeviceSince(ctx, bob, "B1", 0, 0)
		b2, _ := s.ToDeviceSince(ctx, bob, "B2", 0, 0)
		if len(b1) != 1 || string(b1[0].Content) != `{"n":1}` || b1[0].Sender != alice || b1[0].Type != "m.room.encrypted" {
			t.Errorf("B1 got %+v", b1)
		}
		if len(b2) != 2 || string(b2[1].Content) != `{"n":2}` || b2[0].Pos >= b2[1].Pos {
			t.Errorf("B2 got %+v", b2)
		}
		if len(notes.toDevice) != 3 {
			t.Errorf("notifications = %v", notes.toDevice)
		}
		// Acknowledging the first message leaves the second.
		if err := s.AckToDevice(ctx, bob, "B2", b2[0].Pos); err != nil {
			t.Fatal(err)
		}
		left, _ := s.ToDeviceSince(ctx, bob, "B2", 0, 0)
		if len(left) != 1 || left[0].Pos != b2[1].Pos {
			t.Errorf("after ack: %+v", left)
		}
		if limited, _ := s.ToDeviceSince(ctx, bob, "B2", 0, 1); len(limited) != 1 {
			t.Errorf("limit ignored: %+v", limited)
		}
		if err := s.SendToDevice(ctx, alice, "A1", "t", "t3", map[string]map[string]json.RawMessage{bob: {"B1": json.RawMessage(`[1]`)}}); errKind(err) != "M_INVALID_PARAM" {
			t.Errorf("non-object content: %v", err)
		}
		if err := s.SendToDevice(ctx, alice, "A1", "t", "t4", map[string]map[string]json.RawMessage{"bob": {"B1": json.RawMessage(`{}`)}}); errKind(err) != "M_INVALID_PARAM" {
			t.Errorf("bad user id: %v", err)
		}
		// A deleted device loses its queue.
		if err := db.WithTx(ctx, func(tx *storage.Tx) error { return s.DeleteDeviceKeys(ctx, tx, bob, "B1") }); err != nil {
			t.Fatal(err)
		}
		if msgs, _ := s.ToDeviceSince(ctx, bob, "B1", 0, 0); len(msgs) != 0 {
			t.Errorf("deleted device still has %d messages", len(msgs))
		}
	})
}

func TestDeviceListChanges(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		alice, bob, carol := uid("alice"), uid("bob"), uid("carol")
		rooms := fakeRooms{rooms: [][]string{{alice, bob}}}
		s := newStore(t, db, e2e.Options{Rooms: rooms}, map[string][]string{"alice": {"A1"}, "bob": {"B1"}, "carol": {"C1"}})
		start, _ := s.CurrentDeviceListPosition(ctx)
		for _, d := range []device{newDevice(t, bob, "B1"), newDevice(t, carol, "C1")} {
			if _, err := s.Upload(ctx, d.user, d.id, e2e.Upload{DeviceKeys: d.deviceKeys(t)}); err != nil {
				t.Fatal(err)
			}
		}
		mid, _ := s.CurrentDeviceListPosition(ctx)
		got, err := s.DeviceListChanges(ctx, alice, start, mid)
		if err != nil || !slices.Equal(got.Changed, []string{bob}) {
			t.Errorf("changes for alice = %+v, %v; want bob only (carol shares no room)", got, err)
		}
		// Uploading the same keys again is no change; deleting the device is.
		if err := db.WithTx(ctx, func(tx *storage.Tx) error { return s.DeleteDeviceKeys(ctx, tx, bob, "B1") }); err != nil {
			t.Fatal(err)
		}
		end, _ := s.CurrentDeviceListPosition(ctx)
		if got, _ := s.DeviceListChanges(ctx, alice, mid, end); !slices.Equal(got.Changed, []string{bob}) {
			t.Errorf("changes after deleting bob's device = %+v", got)
		}
		if got, _ := s.DeviceListChanges(ctx, alice, end, end); len(got.Changed) != 0 {
			t.Errorf("changes in an empty range = %+v", got)
		}
		if q, _ := s.Query(ctx, alice, map[string][]string{bob: nil}); len(q.DeviceKeys[bob]) != 0 {
			t.Errorf("deleted device still queried: %v", q.DeviceKeys[bob])
		}
		if err := db.WithTx(ctx, func(tx *storage.Tx) error { return s.DeleteUserKeys(ctx, tx, carol) }); err != nil {
			t.Fatal(err)
		}
		if q, _ := s.Query(ctx, alice, map[string][]string{carol: nil}); len(q.DeviceKeys[carol]) != 0 {
			t.Errorf("deactivated user's keys still queried: %v", q.DeviceKeys[carol])
		}
	})
}
