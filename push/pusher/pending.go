package pusher

import (
	"cmp"
	"context"
	"math"
	"slices"
	"strings"
	"time"

	"myelin/storage"
)

// Pending actions (performance, issue 9). Writing push actions costs mostly the pages each
// transaction writes: a row per notified member, in B-trees keyed by member, so one page per
// member per transaction, whether it records the actions of one event or of five hundred
// (migration 0022). So the worker writes them in large transactions: it evaluates each new
// event at once, as before, and moves its position in memory (what WaitFor waits for), but keeps
// the actions in memory, "pending", and writes them with its position ("flushes") only when
// the oldest is flushInterval old, when there are maxPending of them, when one notifies a user
// with an HTTP pusher (delivery reads them from the database), when asked (Flush: GET
// /notifications), and when Run returns.
//
// The readers of counts (UnreadCounts, RoomsWithCountChanges, totalUnread) add the pending
// actions to what the database holds, so that what /sync and push gateways see does not depend
// on when the worker flushes. A user's own events mark their threads read (event_push_read):
// those "own reads" are pending too, and written with the actions (they used to be written at
// once, which made every local message cost a second write transaction: 10 % of the server's
// CPU in the send benchmark). The readers take the further of the database's read positions
// and the pending ones (readPositions). The one reader that counts in SQL, the badge of a push
// (totalUnread), serves users with HTTP pushers only, whose own reads are written at once, as
// their actions are (flushDue); a user who registers a pusher has their pending reads flushed.
//
// A crash loses the pending actions and reads only: the position written is that of the last
// flush, and the events after it are evaluated again on restart (recording an action twice
// keeps one, and a read position only ever moves forward).

const (
	// flushInterval: pending actions are written once the oldest is this old. It bounds what a
	// crash makes the worker evaluate again, not what anyone sees: the readers count pending
	// actions.
	flushInterval = time.Second
	// maxPending: pending actions are written once there are this many, which bounds their
	// memory (a few hundred bytes each) and the size of a flush's transaction.
	maxPending = 5000
	// stopFlushTimeout bounds the flush when Run returns.
	stopFlushTimeout = 5 * time.Second
	// flushChunk bounds what one flush transaction writes: a flush of more writes the oldest
	// actions first, in transactions of about this many, each with the position it reaches
	// (flushOldest). The room server's commits wait for the one writer: a flush of 5,000 actions
	// in one transaction made sends wait 40 ms and more (issue 9).
	flushChunk = 1000
)

// Flush writes the pending actions, with the worker's position, before it returns: GET
// /notifications, which lists what is written, calls it first. It returns at once when Run is
// not running, as nothing is pending then.
func (w *Worker) Flush(ctx context.Context) error {
	w.mu.Lock()
	stopped := w.stopped
	w.mu.Unlock()
	if stopped == nil {
		return nil
	}
	done := make(chan error, 1)
	select {
	case w.flushReq <- done:
	case <-stopped:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	// Run answers every request it took.
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pendingOf returns a user's pending actions, in stream order, and the position up to which
// the database holds every action. A reader counts the database up to that position and the
// pending actions after it: a flush writes them in a transaction that also moves the position,
// and takes them out of pending only after its commit, together with moving recorded, so no
// action is missed or counted twice whenever the flush happens.
func (w *Worker) pendingOf(userID string) ([]storage.PushAction, int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pending[userID], w.recorded
}

// readPositions are the user's read positions in rooms: the database's (receipts and written
// own reads, storage.UserReadPositions) with the pending own reads, whichever is further. The
// pending ones are taken first: a flush in between writes them, and the later of two equal
// positions changes nothing.
func (w *Worker) readPositions(ctx context.Context, userID string, rooms []string) (storage.ReadPositions, error) {
	w.mu.Lock()
	pending := w.pendingReads[userID]
	w.mu.Unlock()
	reads, err := storage.UserReadPositions(ctx, w.cfg.DB, userID, rooms)
	if err != nil || len(pending) == 0 {
		return reads, err
	}
	for room, threads := range pending {
		if !slices.Contains(rooms, room) {
			continue
		}
		if reads[room] == nil {
			reads[room] = map[string]int64{}
		}
		for thread, pos := range threads {
			reads[room][thread] = max(reads[room][thread], pos)
		}
	}
	return reads, nil
}

// hasPendingReads says whether the user has own reads not written yet.
func (w *Worker) hasPendingReads(userID string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pendingReads[userID]) > 0
}

// addPendingReads publishes a batch's own reads; w.mu is held. A user's published positions
// are never changed in place: the user gets a new copy.
func (w *Worker) addPendingReads(reads []ownRead) {
	copied := map[string]bool{}
	for _, r := range reads {
		cur := w.pendingReads[r.userID]
		if !copied[r.userID] {
			next := make(storage.ReadPositions, len(cur)+1)
			for room, threads := range cur {
				next[room] = threads
			}
			cur, copied[r.userID] = next, true
			w.pendingReads[r.userID] = cur
		}
		threads := make(map[string]int64, len(cur[r.roomID])+1)
		for t, p := range cur[r.roomID] {
			threads[t] = p
		}
		threads[r.threadID] = max(threads[r.threadID], r.pos)
		cur[r.roomID] = threads
	}
}

// dropPendingReads forgets the pending own reads at or before upTo, which a flush wrote; w.mu
// is held.
func (w *Worker) dropPendingReads(upTo int64) {
	for user, rooms := range w.pendingReads {
		next := storage.ReadPositions{}
		for room, threads := range rooms {
			for thread, pos := range threads {
				if pos > upTo {
					if next[room] == nil {
						next[room] = map[string]int64{}
					}
					next[room][thread] = pos
				}
			}
		}
		if len(next) == 0 {
			delete(w.pendingReads, user)
		} else {
			w.pendingReads[user] = next
		}
	}
}

// flushReads are the own reads a flush up to upTo writes: the pending ones at or before it and
// extra, the batch's.
func (w *Worker) flushReads(extra []ownRead, upTo int64) []ownRead {
	var out []ownRead
	for user, rooms := range w.pendingReads {
		for room, threads := range rooms {
			for thread, pos := range threads {
				if pos <= upTo {
					out = append(out, ownRead{userID: user, roomID: room, threadID: thread, pos: pos})
				}
			}
		}
	}
	return append(out, extra...)
}

// hasPending says whether actions or own reads are pending. Run's goroutine only.
func (w *Worker) hasPending() bool { return w.nPending > 0 || len(w.pendingReads) > 0 }

// notePending keeps pendingSince: when the oldest pending action or read was published.
func (w *Worker) notePending() {
	switch {
	case !w.hasPending():
		w.pendingSince = time.Time{}
	case w.pendingSince.IsZero():
		w.pendingSince = time.Now()
	}
}

// write writes rows and reads, less those of users whose account was deactivated, and the
// worker's position, in tx; rows is left with what was written.
func (w *Worker) write(ctx context.Context, tx *storage.Tx, rows *[]storage.PushAction, reads []ownRead, pos int64) error {
	users := make([]string, 0, len(reads))
	for _, r := range reads {
		users = append(users, r.userID)
	}
	for _, a := range *rows {
		users = append(users, a.UserID)
	}
	gone, err := w.deactivated(ctx, tx, users)
	if err != nil {
		return err
	}
	*rows = slices.DeleteFunc(*rows, func(a storage.PushAction) bool { return gone[a.UserID] })
	for _, r := range reads {
		if gone[r.userID] {
			continue
		}
		if err := tx.SetOwnEventRead(ctx, r.userID, r.roomID, r.threadID, r.pos); err != nil {
			return err
		}
	}
	if err := tx.InsertPushActions(ctx, *rows); err != nil {
		return err
	}
	return tx.SetPushWorkerPosition(ctx, pos)
}

// UnreadCounts is storage.UnreadCounts with the user's pending actions: /sync's counts.
//
// What the database holds is counted once: the counts of a room are kept (countCache) with the
// read positions and the database position they were counted at, and the next call counts
// only the actions written since, as long as the user has not read further and no action was
// deleted. Counting every unread action on every /sync made a long-poll's cost grow with the
// unread notifications (issue 9).
func (w *Worker) UnreadCounts(ctx context.Context, userID string, rooms []string) ([]storage.UnreadCount, error) {
	acts, upTo := w.pendingOf(userID)
	gen := w.cfg.DB.PushActionDeletions() // before reading: a deletion after it shows as a change
	reads, err := w.readPositions(ctx, userID, rooms)
	if err != nil {
		return nil, err
	}
	floor, kept := w.counts.lookup(userID, rooms, reads, gen, upTo)
	delta, err := storage.UnreadCountsAfter(ctx, w.cfg.DB, userID, rooms, reads, floor, upTo)
	if err != nil {
		return nil, err
	}
	type thread struct{ room, thread string }
	var counts []storage.UnreadCount
	at := map[thread]int{}
	add := func(c storage.UnreadCount) {
		k := thread{c.RoomID, c.ThreadID}
		i, ok := at[k]
		if !ok {
			i = len(counts)
			at[k] = i
			counts = append(counts, storage.UnreadCount{RoomID: c.RoomID, ThreadID: c.ThreadID})
		}
		counts[i].Notifications += c.Notifications
		counts[i].Highlights += c.Highlights
	}
	for _, c := range kept {
		add(c)
	}
	for _, c := range delta {
		add(c)
	}
	w.counts.store(userID, rooms, reads, gen, upTo, counts)
	if len(acts) == 0 {
		return counts, nil
	}
	in := make(map[string]bool, len(rooms))
	for _, r := range rooms {
		in[r] = true
	}
	acts = slices.DeleteFunc(slices.Clone(acts), func(a storage.PushAction) bool { return !in[a.RoomID] })
	for _, a := range unreadAfter(acts, reads) {
		c := storage.UnreadCount{RoomID: a.RoomID, ThreadID: a.ThreadID}
		if a.Notify {
			c.Notifications = 1
		}
		if a.Highlight {
			c.Highlights = 1
		}
		add(c)
	}
	return counts, nil
}

// RoomsWithCountChanges is storage.RoomsWithCountChanges with the rooms of the user's pending
// actions in (fromEvents, toEvents].
func (w *Worker) RoomsWithCountChanges(ctx context.Context, userID string, fromEvents, toEvents, fromReceipts, toReceipts int64) ([]string, error) {
	// Pending first: an action flushed before the database is read is then in one or the other.
	acts, _ := w.pendingOf(userID)
	rooms, err := storage.RoomsWithCountChanges(ctx, w.cfg.DB, userID, fromEvents, toEvents, fromReceipts, toReceipts)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, a := range acts {
		if a.StreamPos <= fromEvents || a.StreamPos > toEvents || seen[a.RoomID] {
			continue
		}
		seen[a.RoomID] = true
		if !slices.Contains(rooms, a.RoomID) {
			rooms = append(rooms, a.RoomID)
		}
	}
	return rooms, nil
}

// totalUnread is storage.TotalUnread with the user's pending actions: the badge count.
func (w *Worker) totalUnread(ctx context.Context, userID string) (int, error) {
	acts, upTo := w.pendingOf(userID)
	n, err := storage.TotalUnread(ctx, w.cfg.DB, userID, upTo)
	if err != nil {
		return 0, err
	}
	acts = slices.DeleteFunc(slices.Clone(acts), func(a storage.PushAction) bool { return !a.Notify })
	unread, err := w.unread(ctx, userID, acts)
	return n + len(unread), err
}

// unread returns those of a user's pending actions that are after their read position in the
// action's thread (storage.UserReadPositions), reading the positions only when there are some.
func (w *Worker) unread(ctx context.Context, userID string, acts []storage.PushAction) ([]storage.PushAction, error) {
	if len(acts) == 0 {
		return nil, nil
	}
	var rooms []string
	for _, a := range acts {
		if !slices.Contains(rooms, a.RoomID) {
			rooms = append(rooms, a.RoomID)
		}
	}
	reads, err := w.readPositions(ctx, userID, rooms)
	if err != nil {
		return nil, err
	}
	return unreadAfter(acts, reads), nil
}

// unreadAfter keeps the actions after the read positions of their threads.
func unreadAfter(acts []storage.PushAction, reads storage.ReadPositions) []storage.PushAction {
	return slices.DeleteFunc(acts, func(a storage.PushAction) bool { return a.StreamPos <= reads.Of(a.RoomID, a.ThreadID) })
}

// flushDue says whether the pending actions and reads are due to be written after this batch:
// by age, by number, or to record the position. What must be written before the batch is
// published is forPushers'.
func (w *Worker) flushDue(b *batch) bool {
	switch {
	case w.nPending+len(b.acts) >= maxPending:
	case w.hasPending() && time.Since(w.pendingSince) >= flushInterval:
	case b.next-w.recorded >= persistEvery:
		// Nothing notified for a while: the position is written anyway, so that a restart
		// does not read a long stretch again.
	default:
		return false
	}
	return true
}

// forPushers says whether b must be written before it is published: delivery reads the
// actions of users with HTTP pushers from the database, and their badge is counted there
// (totalUnread), so their actions and own reads are written at once.
func (w *Worker) forPushers(b *batch) bool {
	if w.deliver.delivers(b.acts) {
		return true
	}
	for _, r := range b.reads {
		if w.deliver.pushesTo(r.userID) {
			return true
		}
	}
	return false
}

// findRedacted sets b.redacted: the events of b.redacts that the room server redacted. It
// deleted their recorded actions in the same transaction; their pending ones, which it cannot
// see, go in commit. A redaction it did not apply (its sender may not redact the event, or the
// event has not arrived) leaves the event's notifications as they are.
func (w *Worker) findRedacted(ctx context.Context, b *batch) error {
	if len(b.redacts) == 0 {
		return nil
	}
	applied, err := storage.RedactionsOf(ctx, w.cfg.DB, b.redacts)
	if err != nil {
		return err
	}
	for id := range applied {
		b.redacted = append(b.redacted, id)
	}
	return nil
}

// commit writes what a batch must: for its redacted events, the deletion of any of their
// actions written after the room server deleted them (by an earlier flush); and with flush,
// every pending action and own read, the batch's, and the batch's position. It then publishes
// the batch (its actions and reads join pending unless flushed, the position moves), and wakes
// whom it concerns.
// Nothing is published before the write commits: a batch that fails is evaluated again as if
// it had not run. A batch with nothing to write writes nothing.
func (w *Worker) commit(ctx context.Context, b *batch, flush bool) error {
	if flush {
		if err := w.flushOldest(ctx); err != nil {
			return err
		}
	}
	replaced, dropped, unrecord := w.dropRedacted(b)
	if flush && w.nPending == 0 && len(b.acts) == 0 && len(w.pendingReads) == 0 && len(b.reads) == 0 && b.next == w.recorded {
		flush = false // nothing to write
	}
	var (
		rows  []storage.PushAction
		reads []ownRead
	)
	if flush {
		rows = w.flushRows(replaced, b.acts)
		reads = w.flushReads(b.reads, math.MaxInt64)
	}
	if flush || len(unrecord) > 0 {
		err := w.cfg.DB.WithTx(ctx, func(tx *storage.Tx) error {
			for _, id := range unrecord {
				if err := tx.DeletePushActionsOfEvent(ctx, id); err != nil {
					return err
				}
			}
			if !flush {
				return nil
			}
			return w.write(ctx, tx, &rows, reads, b.next)
		})
		if err != nil {
			return err
		}
	}

	w.mu.Lock()
	if flush {
		w.pending = map[string][]storage.PushAction{}
		w.pendingReads = map[string]storage.ReadPositions{}
		w.recorded = b.next
	} else {
		for u, acts := range replaced {
			if len(acts) == 0 {
				delete(w.pending, u)
			} else {
				w.pending[u] = acts
			}
		}
		for _, a := range b.acts {
			w.pending[a.UserID] = append(w.pending[a.UserID], a)
		}
		w.addPendingReads(b.reads)
	}
	w.advance(b.next)
	w.mu.Unlock()
	if flush {
		w.nPending = 0
	} else {
		w.nPending += len(b.acts) - dropped
	}
	w.notePending()

	var users []string
	seen := map[string]bool{}
	add := func(u string) {
		if !seen[u] {
			seen[u] = true
			users = append(users, u)
		}
	}
	for _, a := range b.acts {
		add(a.UserID)
	}
	for _, r := range b.reads {
		add(r.userID)
		w.badges.changed(r.userID) // writing in a thread reads it: the badge may go down (badge.go)
	}
	if len(users) > 0 {
		w.cfg.Waker.UserChanged(users...)
	}
	w.kickWritten(rows)
	return nil
}

// kickWritten wakes the pushers of the users whose actions rows (by user) were written:
// delivery reads what is written.
func (w *Worker) kickWritten(rows []storage.PushAction) {
	var last string
	for _, a := range rows {
		if a.UserID != last {
			w.deliver.kickUser(a.UserID)
			last = a.UserID
		}
	}
}

// flushOldest writes the oldest pending actions, in transactions of about flushChunk, until at
// most flushChunk are left for the batch's own transaction (commit). Each writes every pending
// action up to a position, with that position, and publishes that: pending keeps the actions
// after it, recorded moves to it, so readers count each action once throughout. A redacted
// event's actions written this way are deleted by commit, as those of an earlier flush.
func (w *Worker) flushOldest(ctx context.Context) error {
	if w.nPending <= flushChunk {
		return nil
	}
	// Every pending action once, oldest first, by reference: published slices are never
	// changed in place, and the loop below only reslices them.
	all := make([]*storage.PushAction, 0, w.nPending)
	for _, acts := range w.pending {
		for i := range acts {
			all = append(all, &acts[i])
		}
	}
	slices.SortFunc(all, func(a, b *storage.PushAction) int { return cmp.Compare(a.StreamPos, b.StreamPos) })
	for start := 0; w.nPending > flushChunk && len(all)-start > flushChunk; {
		upTo := all[start+flushChunk-1].StreamPos
		n := start + flushChunk
		for n < len(all) && all[n].StreamPos == upTo {
			n++ // an event's actions are written together
		}
		if n == len(all) {
			return nil // one event's actions: they go with the batch
		}
		rows := make([]storage.PushAction, n-start)
		for i, a := range all[start:n] {
			rows[i] = *a
		}
		slices.SortFunc(rows, func(a, b storage.PushAction) int { // the table's key order
			return cmp.Or(strings.Compare(a.UserID, b.UserID), cmp.Compare(a.StreamPos, b.StreamPos))
		})
		// The own reads up to upTo go with them: a restart resumes after upTo.
		reads := w.flushReads(nil, upTo)
		err := w.cfg.DB.WithTx(ctx, func(tx *storage.Tx) error {
			kept := slices.Clone(rows)
			return w.write(ctx, tx, &kept, reads, upTo)
		})
		if err != nil {
			return err
		}
		w.mu.Lock()
		for u, acts := range w.pending {
			i, _ := slices.BinarySearchFunc(acts, upTo+1, func(a storage.PushAction, pos int64) int { return cmp.Compare(a.StreamPos, pos) })
			if i == len(acts) {
				delete(w.pending, u)
			} else if i > 0 {
				w.pending[u] = acts[i:]
			}
		}
		w.dropPendingReads(upTo)
		w.recorded = upTo
		w.mu.Unlock()
		w.nPending -= n - start
		w.kickWritten(rows)
		start = n
	}
	return nil
}

// dropRedacted takes the actions of b's redacted events out of b and pending. It returns the
// pending actions of the users who had some (new slices: published ones are never changed in
// place), how many pending actions went, and the redacted events whose actions were not found
// there: those may have been written by a flush since the room server deleted them.
func (w *Worker) dropRedacted(b *batch) (replaced map[string][]storage.PushAction, dropped int, unrecord []string) {
	replaced = map[string][]storage.PushAction{}
	for _, id := range b.redacted {
		of := func(a storage.PushAction) bool { return a.EventID == id }
		n := len(b.acts)
		b.acts = slices.DeleteFunc(b.acts, of)
		found := len(b.acts) < n
		for u, acts := range w.pending {
			if r, ok := replaced[u]; ok {
				acts = r
			}
			if !slices.ContainsFunc(acts, of) {
				continue
			}
			kept := slices.DeleteFunc(slices.Clone(acts), of)
			dropped += len(acts) - len(kept)
			replaced[u] = kept
			found = true
		}
		if !found {
			unrecord = append(unrecord, id)
		}
	}
	return replaced, dropped, unrecord
}

// flushRows are the actions a flush writes: the pending ones (with replaced) and the batch's,
// by user and in stream order, which is the order of the table's key.
func (w *Worker) flushRows(replaced map[string][]storage.PushAction, acts []storage.PushAction) []storage.PushAction {
	byUser := map[string][]storage.PushAction{}
	n := len(acts)
	for u, p := range w.pending {
		if r, ok := replaced[u]; ok {
			p = r
		}
		byUser[u] = p
		n += len(p)
	}
	for _, a := range acts {
		byUser[a.UserID] = append(byUser[a.UserID], a)
	}
	users := make([]string, 0, len(byUser))
	for u := range byUser {
		users = append(users, u)
	}
	slices.Sort(users)
	rows := make([]storage.PushAction, 0, n)
	for _, u := range users {
		rows = append(rows, byUser[u]...)
	}
	return rows
}

// deactivated returns those of users whose account was deactivated: deactivation deleted their
// recorded actions and reads (DeleteUserPushActions), and pending ones must not bring any back.
// The check runs in the flush's transaction, so an action is either written before the
// account is marked deactivated (and then deleted with the rest, which deactivation does after
// marking it) or left out.
func (w *Worker) deactivated(ctx context.Context, tx *storage.Tx, users []string) (map[string]bool, error) {
	var localparts []string
	seen := map[string]bool{}
	for _, u := range users {
		if !seen[u] {
			seen[u] = true
			localparts = append(localparts, w.localpart(u))
		}
	}
	gone, err := storage.DeactivatedAmong(ctx, tx, localparts)
	if err != nil || len(gone) == 0 {
		return nil, err
	}
	out := map[string]bool{}
	for u := range seen {
		if gone[w.localpart(u)] {
			out[u] = true
		}
	}
	return out, nil
}

// localpart is the localpart of a local user id.
func (w *Worker) localpart(userID string) string {
	return strings.TrimSuffix(strings.TrimPrefix(userID, "@"), ":"+w.cfg.ServerName)
}
