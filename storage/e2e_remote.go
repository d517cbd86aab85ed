package storage

import (
	"context"
	"database/sql"
	"fmt"
)

// RemoteDeviceList is the cached device list of a remote user.
type RemoteDeviceList struct {
	UserID string
	// StreamID is that of the last m.device_list_update applied; -1 when unknown.
	StreamID       int64
	MasterKey      []byte // nil when the user has none
	SelfSigningKey []byte
	FetchedTS      int64
	// Devices maps device id to its keys as the user's server published them.
	Devices map[string][]byte
}

// GetRemoteDeviceList returns the cached device list of a remote user; ErrNotFound if none.
func GetRemoteDeviceList(ctx context.Context, r Reader, userID string) (RemoteDeviceList, error) {
	l := RemoteDeviceList{UserID: userID, Devices: map[string][]byte{}}
	var master, self sql.NullString
	err := r.QueryRow(ctx, `SELECT stream_id, master_key, self_signing_key, fetched_ts FROM e2e_remote_device_lists
		WHERE user_id = $1`, userID).Scan(&l.StreamID, &master, &self, &l.FetchedTS)
	if err != nil {
		return RemoteDeviceList{}, fmt.Errorf("storage: remote device list: %w", err)
	}
	if master.Valid {
		l.MasterKey = []byte(master.String)
	}
	if self.Valid {
		l.SelfSigningKey = []byte(self.String)
	}
	rows, err := r.Query(ctx, `SELECT device_id, key_json FROM e2e_remote_devices WHERE user_id = $1`, userID)
	if err != nil {
		return RemoteDeviceList{}, fmt.Errorf("storage: remote devices: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, js string
		if err := rows.Scan(&id, &js); err != nil {
			return RemoteDeviceList{}, err
		}
		l.Devices[id] = []byte(js)
	}
	return l, rows.Err()
}

// PutRemoteDeviceList replaces the cached device list of a remote user.
func (tx *Tx) PutRemoteDeviceList(ctx context.Context, l RemoteDeviceList) error {
	if err := tx.DeleteRemoteDeviceList(ctx, l.UserID); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO e2e_remote_device_lists (user_id, stream_id, master_key, self_signing_key, fetched_ts)
		VALUES ($1, $2, $3, $4, $5)`, l.UserID, l.StreamID, nullBytes(l.MasterKey), nullBytes(l.SelfSigningKey), l.FetchedTS)
	if err != nil {
		return fmt.Errorf("storage: caching a remote device list: %w", err)
	}
	for id, js := range l.Devices {
		if err := tx.PutRemoteDevice(ctx, l.UserID, id, js); err != nil {
			return err
		}
	}
	return nil
}

// PutRemoteDevice adds or replaces one device of a cached list.
func (tx *Tx) PutRemoteDevice(ctx context.Context, userID, deviceID string, keyJSON []byte) error {
	_, err := tx.Exec(ctx, `INSERT INTO e2e_remote_devices (user_id, device_id, key_json) VALUES ($1, $2, $3)
		ON CONFLICT (user_id, device_id) DO UPDATE SET key_json = excluded.key_json`, userID, deviceID, string(keyJSON))
	if err != nil {
		return fmt.Errorf("storage: caching a remote device: %w", err)
	}
	return nil
}

// DeleteRemoteDevice removes one device of a cached list.
func (tx *Tx) DeleteRemoteDevice(ctx context.Context, userID, deviceID string) error {
	if _, err := tx.Exec(ctx, `DELETE FROM e2e_remote_devices WHERE user_id = $1 AND device_id = $2`, userID, deviceID); err != nil {
		return fmt.Errorf("storage: removing a remote device: %w", err)
	}
	return nil
}

// SetRemoteDeviceListStream records the stream_id of the last update applied to a cached list.
func (tx *Tx) SetRemoteDeviceListStream(ctx context.Context, userID string, streamID int64) error {
	if _, err := tx.Exec(ctx, `UPDATE e2e_remote_device_lists SET stream_id = $2 WHERE user_id = $1`, userID, streamID); err != nil {
		return fmt.Errorf("storage: updating a remote device list: %w", err)
	}
	return nil
}

// SetRemoteCrossSigningKeys replaces the cross-signing keys of a cached list; a nil key is
// left as it is.
func (tx *Tx) SetRemoteCrossSigningKeys(ctx context.Context, userID string, master, selfSigning []byte) error {
	if master != nil {
		if _, err := tx.Exec(ctx, `UPDATE e2e_remote_device_lists SET master_key = $2 WHERE user_id = $1`, userID, string(master)); err != nil {
			return fmt.Errorf("storage: updating remote cross-signing keys: %w", err)
		}
	}
	if selfSigning != nil {
		if _, err := tx.Exec(ctx, `UPDATE e2e_remote_device_lists SET self_signing_key = $2 WHERE user_id = $1`, userID, string(selfSigning)); err != nil {
			return fmt.Errorf("storage: updating remote cross-signing keys: %w", err)
		}
	}
	return nil
}

// DeleteRemoteDeviceList drops the cached device list of a remote user.
func (tx *Tx) DeleteRemoteDeviceList(ctx context.Context, userID string) error {
	if _, err := tx.Exec(ctx, `DELETE FROM e2e_remote_devices WHERE user_id = $1`, userID); err != nil {
		return fmt.Errorf("storage: dropping remote devices: %w", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM e2e_remote_device_lists WHERE user_id = $1`, userID); err != nil {
		return fmt.Errorf("storage: dropping a remote device list: %w", err)
	}
	return nil
}

func nullBytes(b []byte) sql.NullString { return sql.NullString{String: string(b), Valid: b != nil} }

// AnnouncedDevice is what the EDUs sent so far said about one device of a local user (or, with
// DeviceID "", about the user's cross-signing keys and the head of the EDU sequence).
type AnnouncedDevice struct {
	DeviceID string
	Digest   string
	StreamID int64
}

// AnnouncedDevices returns the rows of e2e_device_list_outbound of a local user, by device id.
func AnnouncedDevices(ctx context.Context, r Reader, userID string) (map[string]AnnouncedDevice, error) {
	rows, err := r.Query(ctx, `SELECT device_id, digest, stream_id FROM e2e_device_list_outbound WHERE user_id = $1`, userID)
	if err != nil {
		return nil, fmt.Errorf("storage: announced devices: %w", err)
	}
	defer rows.Close()
	out := map[string]AnnouncedDevice{}
	for rows.Next() {
		var a AnnouncedDevice
		if err := rows.Scan(&a.DeviceID, &a.Digest, &a.StreamID); err != nil {
			return nil, err
		}
		out[a.DeviceID] = a
	}
	return out, rows.Err()
}

// SetAnnouncedDevice records what was announced about a device (or, with DeviceID "", the head).
func (tx *Tx) SetAnnouncedDevice(ctx context.Context, userID string, a AnnouncedDevice) error {
	_, err := tx.Exec(ctx, `INSERT INTO e2e_device_list_outbound (user_id, device_id, digest, stream_id) VALUES ($1, $2, $3, $4)
		ON CONFLICT (user_id, device_id) DO UPDATE SET digest = excluded.digest, stream_id = excluded.stream_id`,
		userID, a.DeviceID, a.Digest, a.StreamID)
	if err != nil {
		return fmt.Errorf("storage: recording an announced device: %w", err)
	}
	return nil
}

// DeleteAnnouncedDevice forgets a device whose deletion was announced.
func (tx *Tx) DeleteAnnouncedDevice(ctx context.Context, userID, deviceID string) error {
	if _, err := tx.Exec(ctx, `DELETE FROM e2e_device_list_outbound WHERE user_id = $1 AND device_id = $2`, userID, deviceID); err != nil {
		return fmt.Errorf("storage: forgetting an announced device: %w", err)
	}
	return nil
}
