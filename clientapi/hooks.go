package clientapi

import (
	"context"

	"myelin/storage"
)

// Hooks let the components that own per-device and per-account data act when devices or accounts
// go away. Each is optional. cmd/myelin wires them.
type Hooks struct {
	// DevicesDeleted runs inside the transaction that deletes devices (logout, device deletion,
	// password change, deactivation), so that their end-to-end encryption keys go with them or
	// not at all. userID is the owner; deviceIDs are the devices actually deleted.
	DevicesDeleted func(ctx context.Context, tx *storage.Tx, userID string, deviceIDs []string) error
	// AccountDeactivated runs after an account is deactivated and its devices are gone. This is
	// where the room server makes the user leave every room (and, when erase is true, marks their
	// events erased); it runs outside the transaction because leaving rooms sends events.
	AccountDeactivated func(ctx context.Context, userID string, erase bool) error
}

func (a *API) devicesDeleted(ctx context.Context, tx *storage.Tx, localpart string, ids []string) error {
	if a.cfg.Hooks.DevicesDeleted == nil || len(ids) == 0 {
		return nil
	}
	return a.cfg.Hooks.DevicesDeleted(ctx, tx, a.accounts.UserID(localpart), ids)
}
