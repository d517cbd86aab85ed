package clientapi

import (
	"context"

	"myelin/storage"
)

// forgottenRooms are the rooms a user forgot, read at most once per sync and only when a
// left room comes up: a forgotten room never appears in /sync again (client-server API,
// "Forgetting rooms"), include_leave or not, until a new membership ends the forgetting.
type forgottenRooms struct {
	byRoom map[string]int64
	loaded bool
}

// has reports whether the user forgot the room at its current membership.
func (f *forgottenRooms) has(ctx context.Context, r storage.Reader, userID string, ur storage.UserRoom) (bool, error) {
	if !f.loaded {
		m, err := storage.ForgottenRooms(ctx, r, userID)
		if err != nil {
			return false, err
		}
		f.byRoom, f.loaded = m, true
	}
	pos, ok := f.byRoom[ur.RoomID]
	return ok && pos >= ur.MembershipPos, nil
}
