package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"sort"
	"time"

	"github.com/sirupsen/logrus"

	"myelin/storage"
)

// ToDeviceLimit is how many messages one /sync hands a device, as the spec recommends.
const ToDeviceLimit = 100

// DefaultToDeviceTTL is how long a message waits for a device that does not sync, unless
// configured otherwise: a device gone for a month is most likely gone for good, and its queue
// would otherwise grow without bound.
const DefaultToDeviceTTL = 30 * 24 * time.Hour

// toDeviceTxnLifetime is how long a /sendToDevice transaction id is remembered: long enough for
// any client retry, short enough that the table stays small.
const toDeviceTxnLifetime = 24 * time.Hour

// ToDeviceEvent is a send-to-device message as /sync delivers it.
type ToDeviceEvent struct {
	Pos     int64           `json:"-"` // on the to_device stream
	Sender  string          `json:"sender"`
	Type    string          `json:"type"`
	Content json.RawMessage `json:"content"`
}

// SendToDevice queues messages for local devices and hands those for remote users to
// federation. messages maps user id to device id, or "*" for all the user's devices, to
// content. A transaction id already used by the sending device makes the call a no-op, so that
// retries deliver nothing twice. Messages to devices that do not exist are dropped.
func (s *Store) SendToDevice(ctx context.Context, sender, senderDevice, eventType, txnID string, messages map[string]map[string]json.RawMessage) error {
	return s.deliver(ctx, sender, senderDevice, txnID, eventType, messages, true)
}

// ReceiveToDevice queues messages that a remote server sent for local users (an m.direct_to_device
// EDU). messageID makes redelivery of the same EDU a no-op. Messages for users of other servers
// are ignored.
func (s *Store) ReceiveToDevice(ctx context.Context, sender, eventType, messageID string, messages map[string]map[string]json.RawMessage) error {
	local := map[string]map[string]json.RawMessage{}
	for u, m := range messages {
		if _, ok := s.localpart(u); ok {
			local[u] = m
		}
	}
	// Remote senders have no device here; the empty device id keeps their transaction ids apart
	// from those of local devices.
	return s.deliver(ctx, sender, "", messageID, eventType, local, false)
}

func (s *Store) deliver(ctx context.Context, sender, senderDevice, txnID, eventType string, messages map[string]map[string]json.RawMessage, forward bool) error {
	if eventType == "" {
		return fail(ErrInvalidParam, "missing event type")
	}
	remote := map[string]map[string]map[string]json.RawMessage{} // server -> user -> device -> content
	var localUsers []string
	for userID, byDevice := range messages {
		server, ok := serverOf(userID)
		if !ok {
			return fail(ErrInvalidParam, "%q is not a user id", userID)
		}
		for device, content := range byDevice {
			if device == "" {
				return fail(ErrInvalidParam, "empty device id")
			}
			if _, err := parseObjectShape(content); err != nil {
				return fail(ErrInvalidParam, "message contents must be JSON objects")
			}
		}
		if server != s.serverName {
			if remote[server] == nil {
				remote[server] = map[string]map[string]json.RawMessage{}
			}
			remote[server][userID] = byDevice
			continue
		}
		localUsers = append(localUsers, userID)
	}
	sort.Strings(localUsers)

	now := s.now()
	type queued struct {
		user    string
		devices []string
	}
	var (
		notes []queued
		pos   int64
		fresh bool
	)
	err := s.db.WithTx(ctx, func(tx *storage.Tx) error {
		notes = notes[:0]
		var err error
		fresh, err = tx.InsertToDeviceTxn(ctx, sender, senderDevice, txnID, now.UnixMilli(), now.Add(-toDeviceTxnLifetime).UnixMilli())
		if err != nil || !fresh || len(localUsers) == 0 {
			return err
		}
		// One request holds at most one message per device, so one position serves them all.
		if pos, err = tx.NextStreamPosition(ctx, storage.ToDeviceStream); err != nil {
			return err
		}
		for _, userID := range localUsers {
			lp, ok := s.localpart(userID)
			if !ok {
				continue
			}
			devices, err := storage.ListDevices(ctx, tx, lp)
			if err != nil {
				return err
			}
			byDevice := messages[userID]
			q := queued{user: userID}
			for _, d := range devices {
				content, ok := byDevice[d.DeviceID]
				if !ok {
					content, ok = byDevice["*"]
				}
				if !ok {
					continue
				}
				if err := tx.InsertToDeviceMessage(ctx, storage.ToDeviceMessage{
					UserID: userID, DeviceID: d.DeviceID, Pos: pos, Sender: sender, Type: eventType, Content: content,
					Created: now.UnixMilli(),
				}); err != nil {
					return err
				}
				q.devices = append(q.devices, d.DeviceID)
			}
			if len(q.devices) > 0 {
				notes = append(notes, q)
			}
		}
		return nil
	})
	if err != nil || !fresh {
		return err
	}
	if s.opts.Notifier != nil {
		for _, n := range notes {
			s.opts.Notifier.ToDeviceQueued(n.user, n.devices, pos)
		}
	}
	if forward {
		s.forward(ctx, sender, eventType, remote)
	}
	return nil
}

// forward hands messages for remote users to federation, which queues them durably. The local
// part of the request has committed, so a failure here is logged rather than returned.
func (s *Store) forward(ctx context.Context, sender, eventType string, remote map[string]map[string]map[string]json.RawMessage) {
	for server, msgs := range remote {
		log := s.opts.Log.WithFields(logrus.Fields{"destination": server, "event_type": eventType})
		if s.opts.Federation == nil {
			log.Warn("dropping send-to-device messages for a remote server: federation is not wired")
			continue
		}
		if err := s.opts.Federation.SendToDevice(ctx, server, sender, eventType, newMessageID(), msgs); err != nil {
			log.WithError(err).Error("could not queue send-to-device messages for a remote server")
		}
	}
}

func newMessageID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// parseObjectShape checks that raw is a JSON object without keeping it.
func parseObjectShape(raw json.RawMessage) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return nil, fail(ErrInvalidParam, "not a JSON object")
	}
	return m, nil
}

// CurrentToDevicePosition is the latest position on the to_device stream, for sync tokens.
func (s *Store) CurrentToDevicePosition(ctx context.Context) (int64, error) {
	return storage.CurrentStreamPosition(ctx, s.db, storage.ToDeviceStream)
}

// ToDeviceSince returns up to limit (ToDeviceLimit if limit <= 0) messages queued for a device
// after position since, oldest first. Messages older than the TTL are never returned, even
// before PurgeExpiredToDevice deletes them. A sync token carrying the position of the last message
// returned (not the stream's current position, when the limit was hit) makes the next call
// continue where this one stopped; that next call should then AckToDevice up to since.
func (s *Store) ToDeviceSince(ctx context.Context, userID, deviceID string, since int64, limit int) ([]ToDeviceEvent, error) {
	if limit <= 0 {
		limit = ToDeviceLimit
	}
	msgs, err := storage.ToDeviceMessagesAfter(ctx, s.db, userID, deviceID, since, s.toDeviceCutoff(), limit)
	if err != nil {
		return nil, err
	}
	out := make([]ToDeviceEvent, len(msgs))
	for i, m := range msgs {
		out[i] = ToDeviceEvent{Pos: m.Pos, Sender: m.Sender, Type: m.Type, Content: m.Content}
	}
	return out, nil
}

// AckToDevice deletes a device's messages up to position upTo: the device has received them
// (it synced again with a token at or after upTo). Every sync of a device that ever received
// one acknowledges, and nearly always there is nothing left to delete: a read finds out first,
// so that such a sync does not take the database's one writer.
func (s *Store) AckToDevice(ctx context.Context, userID, deviceID string, upTo int64) error {
	if upTo <= 0 {
		return nil
	}
	if queued, err := storage.HasToDeviceMessagesUpTo(ctx, s.db, userID, deviceID, upTo); err != nil || !queued {
		return err
	}
	return s.db.WithTx(ctx, func(tx *storage.Tx) error {
		return tx.DeleteToDeviceMessagesUpTo(ctx, userID, deviceID, upTo)
	})
}

// toDeviceCutoff is the queueing time (unix milliseconds) before which a message has expired.
func (s *Store) toDeviceCutoff() int64 { return s.now().Add(-s.opts.ToDeviceTTL).UnixMilli() }

// PurgeExpiredToDevice deletes the messages that have waited longer than the TTL for a device
// that never synced, and reports how many went.
func (s *Store) PurgeExpiredToDevice(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.WithTx(ctx, func(tx *storage.Tx) error {
		var err error
		n, err = tx.DeleteExpiredToDeviceMessages(ctx, s.toDeviceCutoff())
		return err
	})
	return n, err
}

// RunToDeviceExpiry purges expired send-to-device messages now and then every interval (an
// hour, or the TTL if shorter, when interval <= 0) until ctx ends.
func (s *Store) RunToDeviceExpiry(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = min(time.Hour, s.opts.ToDeviceTTL)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if n, err := s.PurgeExpiredToDevice(ctx); err != nil && ctx.Err() == nil {
			s.opts.Log.WithError(err).Error("could not purge expired to-device messages")
		} else if n > 0 {
			s.opts.Log.WithField("count", n).Info("purged expired to-device messages")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
