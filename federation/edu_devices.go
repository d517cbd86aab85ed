package federation

import (
	"context"
	"encoding/json"
	"fmt"

	"myelin/keys/e2e"
)

// The EDUs of end-to-end encryption (server-server API "Device Management", "End-to-End
// Encryption", "Send-to-device messaging"): each must be about a user of the origin.

// RemoteKeySink takes what other servers tell about their users' devices; *e2e.Store is one.
type RemoteKeySink interface {
	ReceiveToDevice(ctx context.Context, sender, eventType, messageID string, messages map[string]map[string]json.RawMessage) error
	ReceiveDeviceListUpdate(ctx context.Context, u e2e.DeviceListUpdate) error
	ReceiveSigningKeyUpdate(ctx context.Context, u e2e.SigningKeyUpdate) error
}

var _ RemoteKeySink = (*e2e.Store)(nil)

// maxMessageIDLength is the spec's bound on message_id, in code points.
const maxMessageIDLength = 32

// directToDeviceEDU handles m.direct_to_device.
func directToDeviceEDU(sink RemoteKeySink) EDUHandlerFunc {
	return func(ctx context.Context, origin string, content json.RawMessage) error {
		var c struct {
			Sender    string                                `json:"sender"`
			Type      string                                `json:"type"`
			MessageID string                                `json:"message_id"`
			Messages  map[string]map[string]json.RawMessage `json:"messages"`
		}
		if err := json.Unmarshal(content, &c); err != nil || c.Type == "" || c.MessageID == "" {
			return fmt.Errorf("malformed m.direct_to_device EDU")
		}
		if serverOf(c.Sender) != origin {
			return fmt.Errorf("m.direct_to_device EDU from %s for a sender of another server", origin)
		}
		if len([]rune(c.MessageID)) > maxMessageIDLength {
			return fmt.Errorf("m.direct_to_device message_id too long")
		}
		return sink.ReceiveToDevice(ctx, c.Sender, c.Type, c.MessageID, c.Messages)
	}
}

// deviceListUpdateEDU handles m.device_list_update.
func deviceListUpdateEDU(sink RemoteKeySink) EDUHandlerFunc {
	return func(ctx context.Context, origin string, content json.RawMessage) error {
		var u e2e.DeviceListUpdate
		if err := json.Unmarshal(content, &u); err != nil || u.UserID == "" || u.DeviceID == "" {
			return fmt.Errorf("malformed m.device_list_update EDU")
		}
		if serverOf(u.UserID) != origin {
			return fmt.Errorf("m.device_list_update EDU from %s for a user of another server", origin)
		}
		return sink.ReceiveDeviceListUpdate(ctx, u)
	}
}

// signingKeyUpdateEDU handles m.signing_key_update.
func signingKeyUpdateEDU(sink RemoteKeySink) EDUHandlerFunc {
	return func(ctx context.Context, origin string, content json.RawMessage) error {
		var u e2e.SigningKeyUpdate
		if err := json.Unmarshal(content, &u); err != nil || u.UserID == "" {
			return fmt.Errorf("malformed m.signing_key_update EDU")
		}
		if serverOf(u.UserID) != origin {
			return fmt.Errorf("m.signing_key_update EDU from %s for a user of another server", origin)
		}
		return sink.ReceiveSigningKeyUpdate(ctx, u)
	}
}

// UserEDUHandlers are the handlers of the EDUs about users: typing and receipts go to
// ephemeral, device lists and to-device messages to keys; either may be nil. Presence EDUs
// have a handler only when presence is enabled: see PresenceEDU (edu_presence.go).
func UserEDUHandlers(ephemeral EphemeralSink, keys RemoteKeySink) map[string]EDUHandler {
	out := map[string]EDUHandler{}
	if ephemeral != nil {
		out["m.typing"] = typingEDU(ephemeral)
		out["m.receipt"] = receiptEDU(ephemeral)
	}
	if keys != nil {
		out["m.direct_to_device"] = directToDeviceEDU(keys)
		out["m.device_list_update"] = deviceListUpdateEDU(keys)
		out["m.signing_key_update"] = signingKeyUpdateEDU(keys)
	}
	return out
}
