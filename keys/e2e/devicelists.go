package e2e

import (
	"context"
	"slices"

	"myelin/storage"
)

// DeviceListChanges is the device_lists part of /sync and the body of /keys/changes.
type DeviceListChanges struct {
	Changed []string `json:"changed"`
	Left    []string `json:"left"`
}

// CurrentDeviceListPosition is the latest position on the device_lists stream, for sync tokens.
func (s *Store) CurrentDeviceListPosition(ctx context.Context) (int64, error) {
	return storage.CurrentStreamPosition(ctx, s.db, storage.DeviceListStream)
}

// DeviceListChanges returns the users who share a room with userID (and userID itself) whose
// devices or cross-signing keys changed at a position in (from, to] of the device_lists stream.
//
// Left is always empty here: who stopped sharing a room with whom is known from membership
// changes, which the sync code sees on the timeline and adds itself.
func (s *Store) DeviceListChanges(ctx context.Context, userID string, from, to int64) (DeviceListChanges, error) {
	out := DeviceListChanges{Changed: []string{}, Left: []string{}}
	if to <= from {
		return out, nil
	}
	changed, err := storage.DeviceListsChangedBetween(ctx, s.db, from, to)
	if err != nil || len(changed) == 0 {
		return out, err
	}
	shared := map[string]bool{userID: true}
	if s.opts.Rooms != nil {
		users, err := s.opts.Rooms.SharedRoomUsers(ctx, userID)
		if err != nil {
			return out, err
		}
		for _, u := range users {
			shared[u] = true
		}
	}
	for _, u := range changed {
		if shared[u] {
			out.Changed = append(out.Changed, u)
		}
	}
	slices.Sort(out.Changed)
	return out, nil
}

// DeleteDeviceKeys removes, within the caller's transaction, everything the store holds for a
// device: keys, signatures, queued messages. Other users are told the device list changed when
// the device had published keys.
func (s *Store) DeleteDeviceKeys(ctx context.Context, tx *storage.Tx, userID, deviceID string) error {
	return s.DevicesDeleted(ctx, tx, userID, []string{deviceID})
}

// DevicesDeleted is DeleteDeviceKeys for several devices of one user; its shape is that of the
// client API's hook, which runs it in the transaction that deletes the devices.
func (s *Store) DevicesDeleted(ctx context.Context, tx *storage.Tx, userID string, deviceIDs []string) error {
	anyKeys := false
	for _, d := range deviceIDs {
		had, err := tx.DeleteDeviceE2E(ctx, userID, d)
		if err != nil {
			return err
		}
		anyKeys = anyKeys || had
	}
	if !anyKeys {
		return nil
	}
	// The notifier is told at once: a /sync woken before the commit finds nothing new yet and
	// waits again, which is harmless, and a hook has no after-commit callback to wait for.
	notify, err := s.markChanged(ctx, tx, userID)
	if err != nil {
		return err
	}
	notify()
	return nil
}

// DeleteUserKeys removes, within the caller's transaction, everything the store holds for a
// user (devices' keys, cross-signing keys, signatures by and on them, queued messages, key
// backups), for account deactivation. Other users are told the device list changed.
func (s *Store) DeleteUserKeys(ctx context.Context, tx *storage.Tx, userID string) error {
	if err := tx.DeleteUserE2E(ctx, userID); err != nil {
		return err
	}
	notify, err := s.markChanged(ctx, tx, userID)
	if err != nil {
		return err
	}
	notify()
	return nil
}
