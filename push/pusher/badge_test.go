package pusher

import (
	"encoding/json"
	"testing"

	"myelin/storage"
)

// TestBadgeNotification: a badge update names no event, room or type; it carries the count
// (left out when zero, which clears the badge), the device without the gateway URL, and low
// priority.
func TestBadgeNotification(t *testing.T) {
	p := storage.Pusher{AppID: "org.example.app", PushKey: "key", PushKeyTS: 12345678000,
		Data: json.RawMessage(`{"url":"https://gw.example/_matrix/push/v1/notify","format":"event_id_only","x":1}`)}
	for _, tc := range []struct {
		unread int
		want   string
	}{
		{0, `{"notification":{"prio":"low","counts":{},"devices":[{"app_id":"org.example.app","pushkey":"key","pushkey_ts":12345678,"data":{"format":"event_id_only","x":1}}]}}`},
		{3, `{"notification":{"prio":"low","counts":{"unread":3},"devices":[{"app_id":"org.example.app","pushkey":"key","pushkey_ts":12345678,"data":{"format":"event_id_only","x":1}}]}}`},
	} {
		got, err := json.Marshal(badgeNotification(p, tc.unread))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tc.want {
			t.Errorf("unread %d:\n got %s\nwant %s", tc.unread, got, tc.want)
		}
	}
}
