package storage_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"testing"

	"myelin/storage"
	"myelin/storage/storagetest"
)

func TestUnreadCountsFollowReceipts(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		const room, user = "!r:x", "@bob:x"
		tx := func(fn func(tx *storage.Tx) error) {
			t.Helper()
			if err := db.WithTx(ctx, fn); err != nil {
				t.Fatal(err)
			}
		}
		var roomNID storage.RoomNID
		tx(func(tx *storage.Tx) error {
			var err error
			roomNID, err = tx.InsertRoom(ctx, room, "12")
			return err
		})
		// Events $1..$6 at stream positions 1..6; $4 and $6 are in the thread of $3.
		thread := map[int]string{4: "$3", 6: "$3"}
		var acts []storage.PushAction
		for i := 1; i <= 6; i++ {
			id := fmt.Sprintf("$%d", i)
			tx(func(tx *storage.Tx) error {
				_, err := tx.InsertEvent(ctx, storage.EventRecord{Room: roomNID, EventID: id, Type: "m.room.message",
					Sender: "@alice:x", Depth: int64(i), StreamPos: int64(i), JSON: []byte(`{"type":"m.room.message"}`)})
				return err
			})
			th := thread[i]
			if th == "" {
				th = storage.ThreadMain
			}
			acts = append(acts, storage.PushAction{UserID: user, RoomNID: roomNID, RoomID: room, EventID: id, StreamPos: int64(i),
				ThreadID: th, Notify: true, Highlight: i == 2, Actions: json.RawMessage(`["notify"]`), TS: int64(1000 * i)})
		}
		tx(func(tx *storage.Tx) error { return tx.InsertPushActions(ctx, acts) })
		tx(func(tx *storage.Tx) error { return tx.InsertPushActions(ctx, acts) }) // twice counts once

		counts := func() map[string]storage.UnreadCount {
			t.Helper()
			got, err := storage.UnreadCounts(ctx, db, user, []string{room}, math.MaxInt64)
			if err != nil {
				t.Fatal(err)
			}
			out := map[string]storage.UnreadCount{}
			for _, c := range got {
				out[c.ThreadID] = c
			}
			// UserReadPositions, which the notification worker applies to the actions it has
			// not written yet, agrees with the read state of every listed action.
			reads, err := storage.UserReadPositions(ctx, db, user, []string{room, "!other:x"})
			if err != nil {
				t.Fatal(err)
			}
			list, err := storage.PushActions(ctx, db, storage.NotificationsQuery{UserID: user, Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range list {
				if read := a.StreamPos <= reads.Of(room, a.ThreadID); read != a.Read {
					t.Fatalf("%s in thread %s: read %v, but read positions %v", a.EventID, a.ThreadID, a.Read, reads)
				}
			}
			return out
		}
		receipt := func(typ, thread, eventID string) {
			tx(func(tx *storage.Tx) error {
				_, err := tx.UpsertReceipt(ctx, storage.Receipt{RoomID: room, UserID: user, Type: typ, ThreadID: thread, EventID: eventID})
				return err
			})
		}
		c := counts()
		if c["main"].Notifications != 4 || c["main"].Highlights != 1 || c["$3"].Notifications != 2 {
			t.Fatalf("initial counts %+v", c)
		}
		// Counting up to a position leaves out what comes after it.
		if got, err := storage.UnreadCounts(ctx, db, user, []string{room}, 3); err != nil || len(got) != 1 || got[0].Notifications != 3 {
			t.Fatalf("counts up to 3: %+v %v", got, err)
		}
		// A private receipt ahead of the public one counts; one behind does not rewind.
		receipt("m.read", "", "$2")
		receipt("m.read.private", "", "$1")
		if c = counts(); c["main"].Notifications != 2 || c["main"].Highlights != 0 || c["$3"].Notifications != 2 {
			t.Fatalf("after m.read at $2: %+v", c)
		}
		// A threaded receipt reads only its thread.
		receipt("m.read", "$3", "$4")
		if c = counts(); c["main"].Notifications != 2 || c["$3"].Notifications != 1 {
			t.Fatalf("after a thread receipt at $4: %+v", c)
		}
		receipt("m.read", "main", "$5")
		if c = counts(); c["main"].Notifications != 0 || c["$3"].Notifications != 1 {
			t.Fatalf("after a main receipt at $5: %+v", c)
		}
		if n, err := storage.TotalUnread(ctx, db, user, math.MaxInt64); err != nil || n != 1 {
			t.Fatalf("TotalUnread = %d %v", n, err)
		}
		if n, err := storage.TotalUnread(ctx, db, user, 5); err != nil || n != 0 {
			t.Fatalf("TotalUnread up to 5 = %d %v", n, err)
		}
		// Writing in a thread reads it, like a receipt.
		tx(func(tx *storage.Tx) error { return tx.SetOwnEventRead(ctx, user, room, "$3", 6) })
		tx(func(tx *storage.Tx) error { return tx.SetOwnEventRead(ctx, user, room, "$3", 5) }) // never backwards
		if c = counts(); len(c) != 0 {
			t.Fatalf("after an own event at 6 in the thread: %+v", c)
		}
		tx(func(tx *storage.Tx) error { return tx.DeleteUserPushActions(ctx, user) })
		tx(func(tx *storage.Tx) error { return tx.InsertPushActions(ctx, acts) })
		if c = counts(); c["$3"].Notifications != 1 {
			t.Fatalf("own-event read position survived deactivation: %+v", c)
		}
		receipt("m.read.private", "", "$6")
		if c = counts(); len(c) != 0 {
			t.Fatalf("after a private receipt at $6: %+v", c)
		}

		// Listing: newest first, read flags, only highlights, paging, ascending after.
		list, err := storage.PushActions(ctx, db, storage.NotificationsQuery{UserID: user, Limit: 4})
		if err != nil || len(list) != 4 || list[0].EventID != "$6" || !list[0].Read {
			t.Fatalf("PushActions: %+v %v", list, err)
		}
		list, _ = storage.PushActions(ctx, db, storage.NotificationsQuery{UserID: user, Limit: 10, Before: 3})
		if len(list) != 2 || list[0].EventID != "$2" {
			t.Fatalf("before 3: %+v", list)
		}
		list, _ = storage.PushActions(ctx, db, storage.NotificationsQuery{UserID: user, Limit: 10, OnlyHighlight: true})
		if len(list) != 1 || list[0].EventID != "$2" {
			t.Fatalf("highlights: %+v", list)
		}
		list, _ = storage.PushActions(ctx, db, storage.NotificationsQuery{UserID: user, Limit: 2, After: 4, Ascending: true})
		if len(list) != 2 || list[0].EventID != "$5" || list[1].EventID != "$6" {
			t.Fatalf("after 4: %+v", list)
		}

		changed, err := storage.RoomsWithCountChanges(ctx, db, user, 5, 6, 0, 0)
		if err != nil || len(changed) != 1 || changed[0] != room {
			t.Fatalf("RoomsWithCountChanges = %v %v", changed, err)
		}
		if changed, _ = storage.RoomsWithCountChanges(ctx, db, user, 6, 6, 100, 100); len(changed) != 0 {
			t.Fatalf("nothing changed, yet %v", changed)
		}

		// Redaction, retention and deactivation remove actions.
		tx(func(tx *storage.Tx) error { return tx.DeletePushActionsOfEvent(ctx, "$6") })
		var pruned int64
		tx(func(tx *storage.Tx) error {
			var err error
			pruned, err = tx.PrunePushActions(ctx, 2500)
			return err
		})
		if pruned != 2 {
			t.Fatalf("pruned %d", pruned)
		}
		list, _ = storage.PushActions(ctx, db, storage.NotificationsQuery{UserID: user, Limit: 10})
		if len(list) != 3 {
			t.Fatalf("after redaction and pruning: %+v", list)
		}
		tx(func(tx *storage.Tx) error { return tx.DeleteUserPushActions(ctx, user) })
		if list, _ = storage.PushActions(ctx, db, storage.NotificationsQuery{UserID: user, Limit: 10}); len(list) != 0 {
			t.Fatalf("after deactivation: %+v", list)
		}

		// The worker's position.
		if _, ok, err := storage.PushWorkerPosition(ctx, db); ok || err != nil {
			t.Fatalf("position before the first run: %v %v", ok, err)
		}
		tx(func(tx *storage.Tx) error { return tx.SetPushWorkerPosition(ctx, 42) })
		if pos, ok, err := storage.PushWorkerPosition(ctx, db); pos != 42 || !ok || err != nil {
			t.Fatalf("position %d %v %v", pos, ok, err)
		}
	})
}

func TestPusherStorage(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		tx := func(fn func(tx *storage.Tx) error) {
			t.Helper()
			if err := db.WithTx(ctx, fn); err != nil {
				t.Fatal(err)
			}
		}
		for _, lp := range []string{"alice", "bob"} {
			tx(func(tx *storage.Tx) error {
				if err := tx.InsertAccount(ctx, storage.Account{Localpart: lp, CreatedTS: 1}); err != nil {
					return err
				}
				for _, dev := range []string{"D1", "D2"} {
					if _, err := tx.UpsertDevice(ctx, storage.Device{Localpart: lp, DeviceID: dev, CreatedTS: 1}); err != nil {
						return err
					}
				}
				return nil
			})
		}
		p := func(lp, dev, key string) storage.Pusher {
			return storage.Pusher{UserID: "@" + lp + ":x", Localpart: lp, DeviceID: dev, Kind: "http", AppID: "app", PushKey: key,
				AppDisplayName: "A", DeviceDisplayName: "D", Lang: "en", Data: json.RawMessage(`{"url":"https://gw/_matrix/push/v1/notify"}`),
				PushKeyTS: 5, DeliveredPos: 7}
		}
		tx(func(tx *storage.Tx) error { return tx.SetPusher(ctx, p("alice", "D1", "k"), false) })
		// Another user setting the same app id and pushkey takes it over, unless appending.
		tx(func(tx *storage.Tx) error { return tx.SetPusher(ctx, p("bob", "D1", "k"), true) })
		if ps, _ := storage.PushersOfUser(ctx, db, "@alice:x"); len(ps) != 1 {
			t.Fatalf("append removed alice's pusher: %+v", ps)
		}
		tx(func(tx *storage.Tx) error { return tx.SetPusher(ctx, p("bob", "D1", "k"), false) })
		if ps, _ := storage.PushersOfUser(ctx, db, "@alice:x"); len(ps) != 0 {
			t.Fatalf("alice's pusher survived bob's: %+v", ps)
		}
		// An update keeps the pushkey's time and the delivery progress.
		tx(func(tx *storage.Tx) error {
			return tx.SetPusherProgress(ctx, "@bob:x", "app", "k", 9, 2, 100)
		})
		upd := p("bob", "D1", "k")
		upd.Lang, upd.PushKeyTS, upd.DeliveredPos = "fr", 99, 1
		tx(func(tx *storage.Tx) error { return tx.SetPusher(ctx, upd, false) })
		got, err := storage.GetPusher(ctx, db, "@bob:x", "app", "k")
		if err != nil || got.Lang != "fr" || got.PushKeyTS != 5 || got.DeliveredPos != 9 || got.Failures != 2 || got.RetryAtTS != 100 {
			t.Fatalf("after update: %+v %v", got, err)
		}
		tx(func(tx *storage.Tx) error { return tx.SetPusher(ctx, p("bob", "D2", "k2"), false) })
		if all, _ := storage.AllPushers(ctx, db, "http"); len(all) != 2 {
			t.Fatalf("AllPushers: %+v", all)
		}
		// A pusher goes with its device.
		tx(func(tx *storage.Tx) error {
			_, err := tx.DeleteDevices(ctx, "bob", []string{"D1"})
			return err
		})
		ps, _ := storage.PushersOfUser(ctx, db, "@bob:x")
		if len(ps) != 1 || ps[0].PushKey != "k2" {
			t.Fatalf("after deleting D1: %+v", ps)
		}
		tx(func(tx *storage.Tx) error { return tx.DeletePusher(ctx, "@bob:x", "app", "k2") })
		if ps, _ := storage.PushersOfUser(ctx, db, "@bob:x"); len(ps) != 0 {
			t.Fatalf("after DeletePusher: %+v", ps)
		}
	})
}

// Pruning finds its cut by stream position, whatever the number of actions and the cut.
func TestPrunePushActionsByPosition(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		prune := func(before int64) int64 {
			t.Helper()
			var n int64
			if err := db.WithTx(ctx, func(tx *storage.Tx) error {
				var err error
				n, err = tx.PrunePushActions(ctx, before)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			return n
		}
		if n := prune(1 << 40); n != 0 {
			t.Fatalf("pruned %d of none", n)
		}
		// Three users notified at positions 3, 6, ..., 300 (some positions have none), each
		// evaluated at ts = 10 × position.
		var acts []storage.PushAction
		for pos := int64(3); pos <= 300; pos += 3 {
			for _, u := range []string{"@a:x", "@b:x", "@c:x"} {
				acts = append(acts, storage.PushAction{UserID: u, RoomID: "!r:x", EventID: fmt.Sprint("$", pos),
					StreamPos: pos, ThreadID: storage.ThreadMain, Notify: true, Actions: json.RawMessage(`["notify"]`), TS: 10 * pos})
			}
		}
		if err := db.WithTx(ctx, func(tx *storage.Tx) error { return tx.InsertPushActions(ctx, acts) }); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct{ before, want int64 }{
			{30, 0},        // ts 30 is the oldest: not before 30
			{31, 3},        // position 3
			{905, 3 * 29},  // positions 6 … 90
			{930, 0},       // the next, 93, is at 930
			{2995, 3 * 69}, // 93 … 297
			{1 << 40, 3},   // 300
			{1 << 40, 0},
		} {
			if n := prune(c.before); n != c.want {
				t.Errorf("pruning before %d: %d, want %d", c.before, n, c.want)
			}
		}
	})
}

// Migration 0028 carries the push actions of the older schema over: the room becomes its short
// id, the actions an id into push_action_sets, and the readers give back what was written.
func TestPushActionsCarriedIntoCompactRows(t *testing.T) {
	storagetest.ForEachConfig(t, func(t *testing.T, cfg storage.Config) {
		ctx := context.Background()
		old, err := storage.OpenMigratedTo(ctx, cfg, 27)
		if err != nil {
			t.Fatal(err)
		}
		const room = "!r:x"
		sound := `["notify",{"set_tweak":"sound","value":"default"}]`
		err = old.WithTx(ctx, func(tx *storage.Tx) error {
			nid, err := tx.InsertRoom(ctx, room, "12")
			if err != nil {
				return err
			}
			for i := int64(1); i <= 3; i++ {
				if _, err := tx.InsertEvent(ctx, storage.EventRecord{Room: nid, EventID: fmt.Sprint("$", i), Type: "m.room.message",
					Sender: "@alice:x", Depth: i, StreamPos: i, JSON: []byte(`{"type":"m.room.message"}`)}); err != nil {
					return err
				}
			}
			_, err = tx.Exec(ctx, `INSERT INTO event_push_actions
				(user_id, room_id, event_id, stream_pos, thread_id, notify, highlight, actions, ts) VALUES
				('@bob:x', '!r:x', '$1', 1, 'main', TRUE, FALSE, $1, 100),
				('@bob:x', '!r:x', '$2', 2, '$1', TRUE, TRUE, '["notify",{"set_tweak":"highlight"}]', 200),
				('@carol:x', '!r:x', '$1', 1, 'main', TRUE, FALSE, $1, 100),
				('@bob:x', '!gone:x', '$9', 9, 'main', TRUE, FALSE, $1, 900)`, sound)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := old.Close(); err != nil {
			t.Fatal(err)
		}
		db := mustOpen(t, cfg)
		defer db.Close()

		got, err := storage.PushActions(ctx, db, storage.NotificationsQuery{UserID: "@bob:x", Limit: 10, Ascending: true})
		if err != nil {
			t.Fatal(err)
		}
		want := []storage.PushAction{
			{UserID: "@bob:x", RoomID: room, EventID: "$1", StreamPos: 1, ThreadID: "main", Notify: true, Actions: json.RawMessage(sound), TS: 100},
			{UserID: "@bob:x", RoomID: room, EventID: "$2", StreamPos: 2, ThreadID: "$1", Notify: true, Highlight: true,
				Actions: json.RawMessage(`["notify",{"set_tweak":"highlight"}]`), TS: 200},
		}
		if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
			t.Fatalf("bob's actions after the migration:\n got %+v\nwant %+v", got, want)
		}
		counts, err := storage.UnreadCounts(ctx, db, "@carol:x", []string{room}, 10)
		if err != nil || len(counts) != 1 || counts[0].Notifications != 1 || counts[0].ThreadID != "main" {
			t.Fatalf("carol's counts after the migration: %+v, %v", counts, err)
		}
		var sets int
		if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM push_action_sets`).Scan(&sets); err != nil || sets != 2 {
			t.Fatalf("push_action_sets holds %d lists (%v), want the 2 distinct ones", sets, err)
		}
	})
}
