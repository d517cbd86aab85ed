package storage

import (
	"context"
	"database/sql"
	"fmt"
)

// Device is a logged-in client of a local user.
type Device struct {
	Localpart   string
	DeviceID    string
	DisplayName string // empty: none set
	CreatedTS   int64
	LastSeenTS  int64
	LastSeenIP  string // empty unless the operator asked for it to be stored
}

// UpsertDevice creates a device, or, if the user already has one with that id, keeps it (and its
// display name) as it is. It reports whether the device was created.
func (tx *Tx) UpsertDevice(ctx context.Context, d Device) (created bool, err error) {
	res, err := tx.Exec(ctx, `INSERT INTO devices (localpart, device_id, display_name, created_ts, last_seen_ts, last_seen_ip)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (localpart, device_id) DO NOTHING`,
		d.Localpart, d.DeviceID, nullString(d.DisplayName), d.CreatedTS, d.LastSeenTS, nullString(d.LastSeenIP))
	if err != nil {
		return false, fmt.Errorf("storage: inserting device: %w", err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// GetDevice returns one device of a user; ErrNotFound if it has none by that id.
func GetDevice(ctx context.Context, r Reader, localpart, deviceID string) (Device, error) {
	row := r.QueryRow(ctx, `SELECT localpart, device_id, display_name, created_ts, last_seen_ts, last_seen_ip
		FROM devices WHERE localpart = $1 AND device_id = $2`, localpart, deviceID)
	return scanDevice(row.Scan)
}

// ListDevices returns every device of a user, oldest first.
func ListDevices(ctx context.Context, r Reader, localpart string) ([]Device, error) {
	rows, err := r.Query(ctx, `SELECT localpart, device_id, display_name, created_ts, last_seen_ts, last_seen_ip
		FROM devices WHERE localpart = $1 ORDER BY created_ts, device_id`, localpart)
	if err != nil {
		return nil, fmt.Errorf("storage: listing devices: %w", err)
	}
	defer rows.Close()
	var out []Device
	for rows.Next() {
		d, err := scanDevice(rows.Scan)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

func scanDevice(scan func(...any) error) (Device, error) {
	var (
		d          Device
		name, ip   sql.NullString
		lastSeenTS sql.NullInt64
	)
	err := scan(&d.Localpart, &d.DeviceID, &name, &d.CreatedTS, &lastSeenTS, &ip)
	d.DisplayName, d.LastSeenTS, d.LastSeenIP = name.String, lastSeenTS.Int64, ip.String
	return d, err
}

// SetDeviceDisplayName renames a device; ErrNotFound if the user has no such device.
func (tx *Tx) SetDeviceDisplayName(ctx context.Context, localpart, deviceID, name string) error {
	res, err := tx.Exec(ctx, `UPDATE devices SET display_name = $3 WHERE localpart = $1 AND device_id = $2`,
		localpart, deviceID, nullString(name))
	if err != nil {
		return fmt.Errorf("storage: renaming device: %w", err)
	}
	return requireRow(res)
}

// TouchDevice records that a device was seen. ip is stored only when non-empty.
func (tx *Tx) TouchDevice(ctx context.Context, localpart, deviceID string, ts int64, ip string) error {
	_, err := tx.Exec(ctx, `UPDATE devices SET last_seen_ts = $3, last_seen_ip = COALESCE($4, last_seen_ip)
		WHERE localpart = $1 AND device_id = $2`, localpart, deviceID, ts, nullString(ip))
	return err
}

// DeleteDevices removes the given devices of a user, with their access and refresh tokens. Ids
// the user has no device for are ignored. It returns the ids actually deleted.
func (tx *Tx) DeleteDevices(ctx context.Context, localpart string, deviceIDs []string) ([]string, error) {
	var deleted []string
	for _, id := range deviceIDs {
		res, err := tx.Exec(ctx, `DELETE FROM devices WHERE localpart = $1 AND device_id = $2`, localpart, id)
		if err != nil {
			return nil, fmt.Errorf("storage: deleting device: %w", err)
		}
		if n, _ := res.RowsAffected(); n > 0 {
			deleted = append(deleted, id)
		}
	}
	return deleted, nil
}

// DeleteAllDevices removes every device of a user except keep (when non-empty), with their
// tokens, and returns the ids deleted.
func (tx *Tx) DeleteAllDevices(ctx context.Context, localpart, keep string) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT device_id FROM devices WHERE localpart = $1 AND device_id <> $2`, localpart, keep)
	if err != nil {
		return nil, fmt.Errorf("storage: listing devices: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return nil, err
	}
	rows.Close()
	if _, err := tx.Exec(ctx, `DELETE FROM devices WHERE localpart = $1 AND device_id <> $2`, localpart, keep); err != nil {
		return nil, fmt.Errorf("storage: deleting devices: %w", err)
	}
	return ids, nil
}

// requireRow turns an update that matched nothing into ErrNotFound.
func requireRow(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}
