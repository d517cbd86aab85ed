package export

import (
	"context"
	"encoding/json"
	"sort"

	"myelin/storage"
)

// End-to-end encryption: public keys and signatures, and key backups exactly as uploaded. The
// backed-up room keys are ciphertext the server cannot read; the user can, with their recovery
// key. One-time keys and pending to-device messages are only counted: the former are handed out
// to others, the latter belong to their senders until delivered.

type e2eDeviceJSON struct {
	DeviceID string `json:"device_id"`
	// Keys is the device's identity keys object as the device uploaded it.
	Keys                        json.RawMessage `json:"keys,omitempty"`
	OneTimeKeyCounts            map[string]int  `json:"one_time_key_counts"`
	UnusedFallbackKeyAlgorithms []string        `json:"unused_fallback_key_algorithms"`
	PendingToDeviceMessages     int             `json:"pending_to_device_messages"`
}

func (e *exporter) writeE2EDevices(ctx context.Context) error {
	keys, err := storage.ListDeviceKeys(ctx, e.opts.DB, e.userID, nil)
	if err != nil {
		return err
	}
	devs, err := storage.ListDevices(ctx, e.opts.DB, e.localpart)
	if err != nil {
		return err
	}
	pending, err := storage.PendingToDeviceCounts(ctx, e.opts.DB, e.userID)
	if err != nil {
		return err
	}
	byID := map[string]*e2eDeviceJSON{}
	add := func(id string) *e2eDeviceJSON {
		if d := byID[id]; d != nil {
			return d
		}
		d := &e2eDeviceJSON{DeviceID: id}
		byID[id] = d
		return d
	}
	for _, d := range devs {
		add(d.DeviceID)
	}
	for _, k := range keys {
		add(k.DeviceID).Keys = json.RawMessage(k.KeyJSON)
	}
	for id := range pending {
		add(id)
	}
	out := make([]*e2eDeviceJSON, 0, len(byID))
	for id, d := range byID {
		if d.OneTimeKeyCounts, err = storage.OneTimeKeyCounts(ctx, e.opts.DB, e.userID, id); err != nil {
			return err
		}
		if d.UnusedFallbackKeyAlgorithms, err = storage.UnusedFallbackKeyAlgorithms(ctx, e.opts.DB, e.userID, id); err != nil {
			return err
		}
		if d.UnusedFallbackKeyAlgorithms == nil {
			d.UnusedFallbackKeyAlgorithms = []string{}
		}
		d.PendingToDeviceMessages = pending[id]
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].DeviceID < out[j].DeviceID })
	return e.writeJSON("e2e/devices.json",
		"each device's identity keys as uploaded, with counts of its one-time keys and pending to-device messages", out)
}

type signatureJSON struct {
	TargetUserID string `json:"target_user_id"`
	TargetKeyID  string `json:"target_key_id"`
	SignerKeyID  string `json:"signer_key_id"`
	Signature    string `json:"signature"`
}

type crossSigningJSON struct {
	// Keys are the master, self-signing and user-signing keys as uploaded, by key type.
	Keys map[string]json.RawMessage `json:"keys"`
	// Signatures are the ones the user uploaded separately (/keys/signatures/upload), on their
	// own keys and on other users' keys.
	Signatures []signatureJSON `json:"signatures"`
}

func (e *exporter) writeCrossSigning(ctx context.Context) error {
	keys, err := storage.CrossSigningKeys(ctx, e.opts.DB, e.userID)
	if err != nil {
		return err
	}
	sigs, err := storage.KeySignaturesBy(ctx, e.opts.DB, e.userID)
	if err != nil {
		return err
	}
	out := crossSigningJSON{Keys: map[string]json.RawMessage{}, Signatures: make([]signatureJSON, 0, len(sigs))}
	for typ, k := range keys {
		out.Keys[typ] = json.RawMessage(k)
	}
	for _, s := range sigs {
		out.Signatures = append(out.Signatures, signatureJSON{TargetUserID: s.TargetUserID, TargetKeyID: s.TargetKeyID,
			SignerKeyID: s.SignerKeyID, Signature: s.Signature})
	}
	return e.writeJSON("e2e/cross_signing.json", "cross-signing public keys and the signatures the user made", out)
}

// backupSessionJSON is a KeyBackupData of the spec: one backed-up room key.
type backupSessionJSON struct {
	FirstMessageIndex int64           `json:"first_message_index"`
	ForwardedCount    int64           `json:"forwarded_count"`
	IsVerified        bool            `json:"is_verified"`
	SessionData       json.RawMessage `json:"session_data"`
}

type backupRoomJSON struct {
	Sessions map[string]backupSessionJSON `json:"sessions"`
}

// keyBackupJSON is one backup version: its metadata as GET /room_keys/version shows it and its
// keys as GET /room_keys/keys returns them, so that a client could restore from it.
type keyBackupJSON struct {
	Version   string                    `json:"version"`
	Algorithm string                    `json:"algorithm"`
	AuthData  json.RawMessage           `json:"auth_data,omitempty"`
	Etag      string                    `json:"etag"`
	Deleted   bool                      `json:"deleted"`
	Count     int                       `json:"count"`
	Rooms     map[string]backupRoomJSON `json:"rooms"`
}

func (e *exporter) writeKeyBackups(ctx context.Context) error {
	versions, err := storage.KeyBackupVersions(ctx, e.opts.DB, e.userID)
	if err != nil {
		return err
	}
	out := make([]keyBackupJSON, 0, len(versions))
	for _, v := range versions {
		b := keyBackupJSON{Version: itoa(v.Version), Algorithm: v.Algorithm, AuthData: v.AuthData,
			Etag: itoa(v.Etag), Deleted: v.Deleted, Rooms: map[string]backupRoomJSON{}}
		keys, err := storage.ListBackupKeys(ctx, e.opts.DB, e.userID, v.Version, "", "")
		if err != nil {
			return err
		}
		for _, k := range keys {
			room, ok := b.Rooms[k.RoomID]
			if !ok {
				room = backupRoomJSON{Sessions: map[string]backupSessionJSON{}}
				b.Rooms[k.RoomID] = room
			}
			data := json.RawMessage(k.SessionData)
			if !json.Valid(data) {
				// Stored as uploaded; should it not be JSON, it travels as a string.
				data, _ = json.Marshal(string(k.SessionData))
			}
			room.Sessions[k.SessionID] = backupSessionJSON{FirstMessageIndex: k.FirstMessageIndex,
				ForwardedCount: k.ForwardedCount, IsVerified: k.IsVerified, SessionData: data}
		}
		b.Count = len(keys)
		out = append(out, b)
	}
	return e.writeJSON("e2e/key_backups.json",
		"server-side key backups: each version's auth_data and its room keys, encrypted as uploaded (readable with the recovery key)", out)
}
