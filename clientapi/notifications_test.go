package clientapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"myelin/keys"
	"myelin/push"
	"myelin/push/pusher"
	"myelin/roomserver"
	"myelin/roomserver/event"
	"myelin/storage"
	"myelin/storage/storagetest"
)

// /sync counts the notifications the worker has evaluated but not written yet, in the rooms
// of the response and to add the rooms whose counts changed; GET /notifications has it write
// them first.
func TestSyncCountsPendingNotifications(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		key, err := keys.GenerateSigningKey()
		if err != nil {
			t.Fatal(err)
		}
		const server = "counts.test"
		alice, bob := "@alice:"+server, "@bob:"+server
		rs := roomserver.New(db, server, key, roomserver.Options{})
		room, err := rs.CreateRoom(ctx, roomserver.CreateRoomRequest{Creator: alice, Preset: roomserver.PresetPublicChat})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rs.Join(ctx, room, bob); err != nil {
			t.Fatal(err)
		}
		log := logrus.New()
		log.SetOutput(io.Discard)
		worker := pusher.New(pusher.Config{ServerName: server, DB: db, Rules: push.NewStore(db), Waker: NewNotifier()}, logrus.NewEntry(log))
		rs.Subscribe(worker.OnNewEvent)
		done := make(chan error, 1)
		go func() { done <- worker.Run(ctx) }()
		defer func() {
			cancel()
			<-done
		}()
		api := New(Config{ServerName: server, DB: db, MaxBodyBytes: 1 << 20, Rooms: rs, Notifications: worker}, logrus.NewEntry(log))
		h := &syncHandlers{API: api, now: time.Now}
		position := func() int64 {
			t.Helper()
			pos, err := storage.CurrentStreamPosition(ctx, db, "events")
			if err != nil {
				t.Fatal(err)
			}
			return pos
		}
		since := SyncToken{Events: position()}
		for worker.WaitFor(ctx, since.Events, time.Second) < since.Events {
			time.Sleep(time.Millisecond) // Run has not started yet
		}
		since.Notifications = since.Events

		sent := time.Now()
		if _, err := rs.SendEvent(ctx, event.Proto{RoomID: room, Type: "m.room.message", Sender: alice,
			Content: json.RawMessage(`{"msgtype":"m.text","body":"hello"}`)}); err != nil {
			t.Fatal(err)
		}
		to := SyncToken{Events: position()}
		resp := newSyncResponse()
		if err := h.syncUnreadCounts(ctx, Requester{UserID: bob}, false, since, &to, resp, syncRequest{}); err != nil {
			t.Fatal(err)
		}
		// The worker writes pending notifications after a second: before, they are pending.
		written, err := storage.PushActions(ctx, db, storage.NotificationsQuery{UserID: bob, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(written) != 0 && time.Since(sent) < 500*time.Millisecond {
			t.Fatalf("written at once: %+v", written)
		}
		jr := resp.Rooms.Join[room]
		if to.Notifications != to.Events || jr == nil || jr.UnreadNotifications.NotificationCount != 1 {
			t.Fatalf("sync up to %+v: room %+v", to, jr)
		}

		got, err := api.getNotifications(httptest.NewRequest("GET", "/_matrix/client/v3/notifications", nil), Requester{UserID: bob})
		if err != nil {
			t.Fatal(err)
		}
		if items := got.Body.(map[string]any)["notifications"].([]notificationItem); len(items) != 1 || items[0].RoomID != room {
			t.Fatalf("GET /notifications: %+v", got.Body)
		}
	})
}
