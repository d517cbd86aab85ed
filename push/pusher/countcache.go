package pusher

import (
	"maps"
	"sync"

	"myelin/storage"
)

// maxCountEntries bounds countCache; past it the cache starts over.
const maxCountEntries = 10_000

// countCache keeps the unread counts of (user, room) as the database held them, so that the
// next /sync counts only the actions written since (Worker.UnreadCounts). An entry is used only
// while the user's read positions in the room are those it was counted with, and no push
// action was deleted since (storage.DB.PushActionDeletions); otherwise the room is counted
// again. It lives in this process: so do the worker and its pending actions.
type countCache struct {
	mu      sync.Mutex
	entries map[countKey]countEntry
}

type countKey struct{ user, room string }

type countEntry struct {
	deletions uint64
	reads     map[string]int64 // the user's read positions in the room, by thread
	upTo      int64            // the database position counted up to
	counts    []storage.UnreadCount
}

// lookup returns, for the rooms with a usable entry, the position counted up to (floor) and
// the counts kept.
func (c *countCache) lookup(user string, rooms []string, reads storage.ReadPositions, deletions uint64, upTo int64) (map[string]int64, []storage.UnreadCount) {
	c.mu.Lock()
	defer c.mu.Unlock()
	floor := map[string]int64{}
	var kept []storage.UnreadCount
	for _, room := range rooms {
		e, ok := c.entries[countKey{user, room}]
		if !ok || e.deletions != deletions || e.upTo > upTo || !maps.Equal(e.reads, reads[room]) {
			continue
		}
		floor[room] = e.upTo
		kept = append(kept, e.counts...)
	}
	return floor, kept
}

// store keeps the counts of rooms, counted with reads and deletions up to upTo.
func (c *countCache) store(user string, rooms []string, reads storage.ReadPositions, deletions uint64, upTo int64, counts []storage.UnreadCount) {
	byRoom := map[string][]storage.UnreadCount{}
	for _, ct := range counts {
		byRoom[ct.RoomID] = append(byRoom[ct.RoomID], ct)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries)+len(rooms) > maxCountEntries {
		c.entries = map[countKey]countEntry{}
	}
	for _, room := range rooms {
		c.entries[countKey{user, room}] = countEntry{
			deletions: deletions, reads: maps.Clone(reads[room]), upTo: upTo, counts: byRoom[room],
		}
	}
}
