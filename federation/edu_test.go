package federation

import (
	"context"
	"encoding/json"
	"testing"

	"myelin/keys/e2e"
	"myelin/storage"
)

type fakeSink struct {
	typing   []string
	receipts []storage.Receipt
	toDevice []string
	updates  []e2e.DeviceListUpdate
}

func (f *fakeSink) RemoteTyping(_ context.Context, roomID, userID string, typing bool) error {
	f.typing = append(f.typing, roomID+" "+userID)
	return nil
}
func (f *fakeSink) RemoteReceipt(_ context.Context, rc storage.Receipt) error {
	f.receipts = append(f.receipts, rc)
	return nil
}
func (f *fakeSink) ReceiveToDevice(_ context.Context, sender, _, _ string, _ map[string]map[string]json.RawMessage) error {
	f.toDevice = append(f.toDevice, sender)
	return nil
}
func (f *fakeSink) ReceiveDeviceListUpdate(_ context.Context, u e2e.DeviceListUpdate) error {
	f.updates = append(f.updates, u)
	return nil
}
func (f *fakeSink) ReceiveSigningKeyUpdate(context.Context, e2e.SigningKeyUpdate) error { return nil }

// EDUs about users of another server than the origin are refused; private receipts never
// reach the sink.
func TestUserEDUs(t *testing.T) {
	for _, tc := range []struct {
		name, typ, content string
		accepted           bool
	}{
		{"typing of the origin's user", "m.typing", `{"room_id":"!r:a","user_id":"@u:origin","typing":true}`, true},
		{"typing of another server's user", "m.typing", `{"room_id":"!r:a","user_id":"@u:elsewhere","typing":true}`, false},
		{"typing without typing", "m.typing", `{"room_id":"!r:a","user_id":"@u:origin"}`, false},
		{"read receipt", "m.receipt", `{"!r:a":{"m.read":{"@u:origin":{"event_ids":["$e"],"data":{"ts":1,"thread_id":"main"}}}}}`, true},
		{"read receipt of another server's user", "m.receipt", `{"!r:a":{"m.read":{"@u:elsewhere":{"event_ids":["$e"],"data":{"ts":1}}}}}`, false},
		{"private receipt", "m.receipt", `{"!r:a":{"m.read.private":{"@u:origin":{"event_ids":["$e"],"data":{"ts":1}}}}}`, false},
		{"to-device", "m.direct_to_device", `{"sender":"@u:origin","type":"m.x","message_id":"1","messages":{}}`, true},
		{"to-device from another server's user", "m.direct_to_device", `{"sender":"@u:elsewhere","type":"m.x","message_id":"1","messages":{}}`, false},
		{"device list update", "m.device_list_update", `{"user_id":"@u:origin","device_id":"D","stream_id":2,"prev_id":[1]}`, true},
		{"device list update of another server's user", "m.device_list_update", `{"user_id":"@u:elsewhere","device_id":"D","stream_id":2}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := &fakeSink{}
			h := UserEDUHandlers(sink, sink)[tc.typ]
			_ = h.HandleEDU(context.Background(), "origin", json.RawMessage(tc.content))
			got := len(sink.typing) + len(sink.receipts) + len(sink.toDevice) + len(sink.updates)
			if (got > 0) != tc.accepted {
				t.Errorf("accepted = %v, want %v", got > 0, tc.accepted)
			}
			if len(sink.receipts) > 0 && sink.receipts[0].ThreadID != "main" {
				t.Errorf("receipt thread lost: %+v", sink.receipts[0])
			}
		})
	}
}
