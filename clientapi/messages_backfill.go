package clientapi

import (
	"context"
	"math"

	"myelin/mxhttp"
	"myelin/roomserver/event"
	"myelin/storage"
)

// backfillPage completes a backwards page of /messages with history from other servers. When
// the page reaches the start of what this server has of the room, or crosses a gap in it
// (events whose prev events this server lacks: a room joined over federation, a gap bridged
// with /state_ids), the room server fetches the history there (/backfill) and the page is
// read again. The room server bounds the work and remembers what it fetched or gave up on, so
// paginating again reads storage only. A failure to backfill is logged and the page served
// as it is.
func (a *API) backfillPage(ctx context.Context, who Requester, room storage.Room, v event.RoomVersion,
	from RoomToken, bound storage.TopoPos, ceiling int64, limit int, filter *RoomEventFilter, p page) (page, error) {
	if limit <= 0 {
		return p, nil
	}
	minDepth, maxDepth := int64(math.MinInt64), int64(math.MaxInt64)
	if from.Topological {
		maxDepth = from.Depth
	}
	if p.more {
		// A full page: only gaps within it matter now; those below wait for the next page.
		if !p.next.Topological {
			return p, nil
		}
		minDepth = p.next.Depth
	}
	if bound.Topological && bound.Depth > minDepth {
		minDepth = bound.Depth
	}
	for range maxBackfillRounds {
		n, err := a.cfg.Rooms.BackfillBefore(ctx, room.ID, minDepth, maxDepth, limit)
		if err != nil {
			mxhttp.Logger(ctx).WithError(err).WithField("room_id", room.ID).Warn("backfilling a room's history")
		}
		if n == 0 {
			return p, nil
		}
		if p, err = a.pageEvents(ctx, who, room, v, from, bound, ceiling, true, limit, filter); err != nil || p.more {
			return p, err
		}
	}
	return p, nil
}

// maxBackfillRounds bounds the backfill requests one page makes while it is not full (the
// history the server gave was hidden from the user, or was only part of a fork).
const maxBackfillRounds = 3
