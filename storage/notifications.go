package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Push actions: what a local user's push rules decided about an event that notifies or
// highlights. The notification worker (push/pusher) writes them; /sync counts them and
// GET /notifications lists them.

// ThreadMain is the thread id of the main timeline in receipts and notification counts.
const ThreadMain = "main"

// PushAction is one event that notified (or highlighted for) one user.
type PushAction struct {
	UserID string
	// RoomNID is what InsertPushActions stores of the room; the readers fill RoomID from it.
	RoomNID RoomNID
	RoomID  string
	// EventID is not stored: the readers find it by the event's stream position.
	EventID   string
	StreamPos int64
	// ThreadID is ThreadMain or the thread root's event id.
	ThreadID  string
	Notify    bool
	Highlight bool
	// Actions are the matching push rule's actions, as JSON.
	Actions json.RawMessage
	TS      int64
	// Read is set by the readers: the user's receipts are at or after the event.
	Read bool
}

// readPosition is the stream position up to which the user of a push action (alias a; its
// room's row in rooms, alias rm) has read its thread: the furthest of their m.read and
// m.read.private receipts, unthreaded or in the action's thread, and of their own latest event
// in the thread; 0 if none. A receipt on an event not on the timeline counts as none.
const readPosition = `COALESCE((SELECT MAX(x.pos) FROM (
		SELECT e.stream_pos AS pos FROM receipts r JOIN events e ON e.event_id = r.event_id
			WHERE r.room_id = rm.room_id AND r.user_id = a.user_id AND r.receipt_type IN ('m.read', 'm.read.private')
			AND (r.thread_id = '' OR r.thread_id = a.thread_id)
		UNION ALL SELECT s.stream_pos AS pos FROM event_push_read s
			WHERE s.user_id = a.user_id AND s.room_id = rm.room_id AND s.thread_id = a.thread_id
	) x), 0)`

// SetOwnEventRead records that a local user sent an event at pos in a room's thread, which
// marks what came before it in the thread as read.
func (tx *Tx) SetOwnEventRead(ctx context.Context, userID, roomID, threadID string, pos int64) error {
	_, err := tx.Exec(ctx, `INSERT INTO event_push_read (user_id, room_id, thread_id, stream_pos) VALUES ($1, $2, $3, $4)
		ON CONFLICT (user_id, room_id, thread_id) DO UPDATE SET stream_pos = excluded.stream_pos
		WHERE excluded.stream_pos > event_push_read.stream_pos`, userID, roomID, threadID, pos)
	if err != nil {
		return fmt.Errorf("storage: recording an own event as read: %w", err)
	}
	return nil
}

// InsertPushActions records actions; an action already recorded (same user and event, which
// is the same user and stream position: the table's key, see migration 0022) is left as it
// is, so that evaluating an event twice never counts it twice. Of each action it stores the
// user, the stream position, the room's short id (RoomNID), the thread, the flags, the time
// and the actions as a short id into push_action_sets (migration 0028).
func (tx *Tx) InsertPushActions(ctx context.Context, acts []PushAction) error {
	sets := map[string]int64{}
	for _, a := range acts {
		if _, ok := sets[string(a.Actions)]; ok {
			continue
		}
		id, err := tx.pushActionSet(ctx, string(a.Actions))
		if err != nil {
			return fmt.Errorf("storage: recording push actions: %w", err)
		}
		sets[string(a.Actions)] = id
	}
	const perRow = 8
	for chunk := range binaryChunks(acts, maxRowsPerInsert) {
		args := make([]any, 0, perRow*len(chunk))
		for _, a := range chunk {
			args = append(args, a.UserID, a.StreamPos, a.RoomNID, a.ThreadID, a.Notify, a.Highlight, sets[string(a.Actions)], a.TS)
		}
		_, err := tx.Exec(ctx, `INSERT INTO event_push_actions
			(user_id, stream_pos, room_nid, thread_id, notify, highlight, set_id, ts)
			VALUES `+rowValues(len(chunk), perRow)+` ON CONFLICT (user_id, stream_pos) DO NOTHING`, args...)
		if err != nil {
			return fmt.Errorf("storage: recording push actions: %w", err)
		}
	}
	return nil
}

// pushActionSet returns the id of an action list in push_action_sets, adding it when new.
func (tx *Tx) pushActionSet(ctx context.Context, actions string) (int64, error) {
	var id int64
	err := tx.QueryRow(ctx, `SELECT set_id FROM push_action_sets WHERE actions = $1`, actions).Scan(&id)
	if !errors.Is(err, ErrNotFound) {
		return id, err
	}
	// ON CONFLICT: a concurrent transaction (PostgreSQL) may have added it since; its row is
	// then read again, once that transaction has committed.
	err = tx.QueryRow(ctx, `INSERT INTO push_action_sets (actions) VALUES ($1)
		ON CONFLICT (actions) DO NOTHING RETURNING set_id`, actions).Scan(&id)
	if errors.Is(err, ErrNotFound) {
		err = tx.QueryRow(ctx, `SELECT set_id FROM push_action_sets WHERE actions = $1`, actions).Scan(&id)
	}
	return id, err
}

// PushWorkerPosition returns the position on the events stream up to which push rules have
// been evaluated; ok is false before the worker first ran.
func PushWorkerPosition(ctx context.Context, r Reader) (pos int64, ok bool, err error) {
	err = r.QueryRow(ctx, `SELECT stream_pos FROM push_worker_position WHERE id = 1`).Scan(&pos)
	if errors.Is(err, ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("storage: push worker position: %w", err)
	}
	return pos, true, nil
}

// SetPushWorkerPosition records the position up to which push rules have been evaluated.
func (tx *Tx) SetPushWorkerPosition(ctx context.Context, pos int64) error {
	_, err := tx.Exec(ctx, `INSERT INTO push_worker_position (id, stream_pos) VALUES (1, $1)
		ON CONFLICT (id) DO UPDATE SET stream_pos = excluded.stream_pos`, pos)
	if err != nil {
		return fmt.Errorf("storage: storing the push worker position: %w", err)
	}
	return nil
}

// UnreadCount is the unread notifications of a user in one thread of a room.
type UnreadCount struct {
	RoomID, ThreadID          string
	Notifications, Highlights int
}

// UnreadCounts returns a user's unread notifications in rooms, per room and thread (threads
// without any are left out), counting the actions at stream positions up to upTo: the
// notification worker adds those after it, which it holds in memory (push/pusher).
//
// The read positions are read first (UserReadPositions), so that counting is an index range
// per room rather than the readPosition subquery per action: with that subquery a /sync cost
// grew with the number of unread notifications, half of a long-poll's CPU after a thousand
// (issue 9). Actions are counted after the room's unthreaded receipt; a thread read further
// (a threaded receipt, the user's own event) then has the actions in between taken off.
func UnreadCounts(ctx context.Context, r Reader, userID string, rooms []string, upTo int64) ([]UnreadCount, error) {
	reads, err := UserReadPositions(ctx, r, userID, rooms)
	if err != nil {
		return nil, err
	}
	return UnreadCountsAfter(ctx, r, userID, rooms, reads, nil, upTo)
}

// PushActionDeletions counts the transactions of this process that deleted push actions (a
// redaction, a purge, a deactivation, pruning): counts kept from before it changed may count
// actions that are gone.
func (db *DB) PushActionDeletions() uint64 { return db.pushDeletions.Load() }

// UnreadCountsAfter is UnreadCounts with the user's read positions already read, counting in
// each room only the actions after floor[room] (0 if absent): the notification worker adds
// what it counted before (push/pusher).
func UnreadCountsAfter(ctx context.Context, r Reader, userID string, rooms []string, reads ReadPositions, floor map[string]int64, upTo int64) ([]UnreadCount, error) {
	type key struct{ room, thread string }
	at := map[key]int{}
	var out []UnreadCount
	add := func(room, thread string, notifications, highlights int) {
		i, ok := at[key{room, thread}]
		if !ok {
			i = len(out)
			at[key{room, thread}] = i
			out = append(out, UnreadCount{RoomID: room, ThreadID: thread})
		}
		out[i].Notifications += notifications
		out[i].Highlights += highlights
	}
	// (room, unthreaded read position) for every room, then (room, thread, from, to] for the
	// threads read further than their room.
	type span struct {
		room, thread string
		from, to     int64
	}
	var whole, less []span
	for _, room := range rooms {
		from := max(reads[room][""], floor[room])
		whole = append(whole, span{room: room, from: from, to: upTo})
		for thread, pos := range reads[room] {
			if thread != "" && pos > from {
				less = append(less, span{room: room, thread: thread, from: from, to: min(pos, upTo)})
			}
		}
	}
	count := func(spans []span, threaded bool, sign int) error {
		const perSpan = 4
		for chunk := range chunks(spans, (maxInArgs-1)/perSpan) {
			values := make([]string, len(chunk))
			args := []any{userID}
			for i, sp := range chunk {
				n := 2 + i*perSpan
				values[i] = fmt.Sprintf("(CAST($%d AS TEXT), CAST($%d AS TEXT), CAST($%d AS BIGINT), CAST($%d AS BIGINT))", n, n+1, n+2, n+3)
				args = append(args, sp.room, sp.thread, sp.from, sp.to)
			}
			cond := ""
			if threaded {
				cond = " AND a.thread_id = t.column2"
			}
			rows, err := r.Query(ctx, `SELECT rm.room_id, a.thread_id,
					SUM(CASE WHEN a.notify THEN 1 ELSE 0 END), SUM(CASE WHEN a.highlight THEN 1 ELSE 0 END)
				FROM (VALUES `+strings.Join(values, ", ")+`) AS t
				JOIN rooms rm ON rm.room_id = t.column1
				JOIN event_push_actions a ON a.user_id = $1 AND a.room_nid = rm.room_nid`+cond+`
					AND a.stream_pos > t.column3 AND a.stream_pos <= t.column4
				GROUP BY rm.room_id, a.thread_id`, args...)
			if err != nil {
				return err
			}
			for rows.Next() {
				var (
					room, thread string
					n, h         int
				)
				if err := rows.Scan(&room, &thread, &n, &h); err != nil {
					rows.Close()
					return err
				}
				add(room, thread, sign*n, sign*h)
			}
			err = rows.Err()
			rows.Close()
			if err != nil {
				return err
			}
		}
		return nil
	}
	if err := count(whole, false, 1); err != nil {
		return nil, fmt.Errorf("storage: counting unread notifications: %w", err)
	}
	if err := count(less, true, -1); err != nil {
		return nil, fmt.Errorf("storage: counting unread notifications: %w", err)
	}
	return slices.DeleteFunc(out, func(c UnreadCount) bool { return c.Notifications == 0 && c.Highlights == 0 }), nil
}

// TotalUnread returns the number of a user's unread notifications across all rooms, the
// badge count sent to push gateways, counting the actions at stream positions up to upTo (as
// UnreadCounts).
func TotalUnread(ctx context.Context, r Reader, userID string, upTo int64) (int, error) {
	var n int
	err := r.QueryRow(ctx, `SELECT COUNT(*) FROM event_push_actions a JOIN rooms rm ON rm.room_nid = a.room_nid
		WHERE a.user_id = $1 AND a.notify AND a.stream_pos <= $2 AND a.stream_pos > `+readPosition, userID, upTo).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("storage: counting unread notifications: %w", err)
	}
	return n, nil
}

// ReadPositions are the stream positions up to which a user has read the threads of some
// rooms, by room and thread: the read position of readPosition, for actions the database does
// not hold yet. Thread "" holds the unthreaded receipts, which read every thread.
type ReadPositions map[string]map[string]int64

// Of is the position up to which the user has read a thread of a room; 0 if none.
func (p ReadPositions) Of(roomID, threadID string) int64 {
	return max(p[roomID][""], p[roomID][threadID])
}

// UserReadPositions returns how far a user has read the threads of rooms (see ReadPositions).
func UserReadPositions(ctx context.Context, r Reader, userID string, rooms []string) (ReadPositions, error) {
	out := ReadPositions{}
	err := eachRowIn(ctx, r, func(in string) string {
		return `SELECT r.room_id, r.thread_id, MAX(e.stream_pos) FROM receipts r JOIN events e ON e.event_id = r.event_id
				WHERE r.user_id = $1 AND r.room_id IN (` + in + `) AND r.receipt_type IN ('m.read', 'm.read.private')
				AND e.stream_pos IS NOT NULL
				GROUP BY r.room_id, r.thread_id
			UNION ALL SELECT room_id, thread_id, stream_pos FROM event_push_read
				WHERE user_id = $1 AND room_id IN (` + in + `)`
	}, []any{userID}, rooms, func(scan func(...any) error) error {
		var (
			room, thread string
			pos          int64
		)
		if err := scan(&room, &thread, &pos); err != nil {
			return err
		}
		if out[room] == nil {
			out[room] = map[string]int64{}
		}
		out[room][thread] = max(out[room][thread], pos)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: reading read positions: %w", err)
	}
	return out, nil
}

// RoomsWithCountChanges returns the rooms where a user's unread counts may have changed
// between two positions: new actions on the events stream in (fromEvents, toEvents], or the
// user's own read receipts changed on the receipts stream in (fromReceipts, toReceipts].
func RoomsWithCountChanges(ctx context.Context, r Reader, userID string, fromEvents, toEvents, fromReceipts, toReceipts int64) ([]string, error) {
	return queryStrings(ctx, r, `SELECT rm.room_id FROM event_push_actions a JOIN rooms rm ON rm.room_nid = a.room_nid
			WHERE a.user_id = $1 AND a.stream_pos > $2 AND a.stream_pos <= $3
		UNION SELECT room_id FROM receipts
			WHERE user_id = $1 AND stream_pos > $4 AND stream_pos <= $5 AND receipt_type IN ('m.read', 'm.read.private')`,
		userID, fromEvents, toEvents, fromReceipts, toReceipts)
}

// NotificationsQuery selects a page of GET /notifications.
type NotificationsQuery struct {
	UserID string
	// Before: only actions at stream positions below it; 0 for the newest.
	Before int64
	// After: only actions at stream positions above it (the pusher's progress); ignored when 0.
	After         int64
	Limit         int
	OnlyHighlight bool
	// OnlyNotify: only actions that notify (what pushers deliver).
	OnlyNotify bool
	// Ascending orders oldest first (delivery); else newest first (GET /notifications).
	Ascending bool
}

// PushActions returns a user's push actions with their read state, as q selects them.
func PushActions(ctx context.Context, r Reader, q NotificationsQuery) ([]PushAction, error) {
	query := `SELECT rm.room_id, e.event_id, a.stream_pos, a.thread_id, a.notify, a.highlight, s.actions, a.ts,
			CASE WHEN a.stream_pos <= ` + readPosition + ` THEN 1 ELSE 0 END
		FROM event_push_actions a
		JOIN rooms rm ON rm.room_nid = a.room_nid
		JOIN events e ON e.stream_pos = a.stream_pos AND e.room_nid = a.room_nid
		JOIN push_action_sets s ON s.set_id = a.set_id
		WHERE a.user_id = $1 AND a.stream_pos > $2`
	args := []any{q.UserID, q.After}
	if q.Before > 0 {
		query += ` AND a.stream_pos < $3`
		args = append(args, q.Before)
	}
	if q.OnlyHighlight {
		query += ` AND a.highlight`
	}
	if q.OnlyNotify {
		query += ` AND a.notify`
	}
	if q.Ascending {
		query += ` ORDER BY a.stream_pos ASC`
	} else {
		query += ` ORDER BY a.stream_pos DESC`
	}
	query += fmt.Sprintf(` LIMIT %d`, max(q.Limit, 1))
	rows, err := r.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("storage: reading notifications: %w", err)
	}
	defer rows.Close()
	var out []PushAction
	for rows.Next() {
		a := PushAction{UserID: q.UserID}
		var (
			actions string
			read    int
		)
		if err := rows.Scan(&a.RoomID, &a.EventID, &a.StreamPos, &a.ThreadID, &a.Notify, &a.Highlight, &actions, &a.TS, &read); err != nil {
			return nil, fmt.Errorf("storage: reading notifications: %w", err)
		}
		a.Actions, a.Read = json.RawMessage(actions), read == 1
		out = append(out, a)
	}
	return out, rows.Err()
}

// DeletePushActionsOfEvent forgets the actions of an event whose content a redaction pruned.
// They are found by the event's stream position, which the table is indexed on (migration
// 0022): the worker evaluates only events that got a positive position when they were stored,
// and such a position never changes (only outliers are placed on the timeline later, at
// negative backfill positions).
func (tx *Tx) DeletePushActionsOfEvent(ctx context.Context, eventID string) error {
	tx.pushActionsDeleted = true
	if _, err := tx.Exec(ctx, `DELETE FROM event_push_actions
		WHERE stream_pos IN (SELECT stream_pos FROM events WHERE event_id = $1 AND stream_pos > 0)`, eventID); err != nil {
		return fmt.Errorf("storage: deleting push actions of an event: %w", err)
	}
	return nil
}

// DeleteUserPushActions forgets every push action of a user, and where they last wrote, for
// account deactivation.
func (tx *Tx) DeleteUserPushActions(ctx context.Context, userID string) error {
	tx.pushActionsDeleted = true
	for _, table := range []string{"event_push_actions", "event_push_read"} {
		if _, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE user_id = $1`, userID); err != nil {
			return fmt.Errorf("storage: deleting push actions: %w", err)
		}
	}
	return nil
}

// PrunePushActions deletes the push actions recorded before beforeTS (milliseconds) and
// returns how many went. An action's ts is when the worker evaluated it, which it does in
// stream order, so ts grows with stream_pos: the cut is found by a binary search over the
// positions, on the stream_pos index, rather than on an index of ts that every insert would
// pay for (migration 0026). Should the clock have gone back, an action after the cut but
// older than beforeTS waits for a later pass, and one before it but newer stays.
func (tx *Tx) PrunePushActions(ctx context.Context, beforeTS int64) (int64, error) {
	// first is the first action at or after a position: its position and time; ok is false
	// when there is none.
	first := func(pos int64) (at, ts int64, ok bool, err error) {
		err = tx.QueryRow(ctx, `SELECT stream_pos, ts FROM event_push_actions WHERE stream_pos >= $1
			ORDER BY stream_pos LIMIT 1`, pos).Scan(&at, &ts)
		if errors.Is(err, ErrNotFound) {
			return 0, 0, false, nil
		}
		return at, ts, err == nil, err
	}
	low, ts, ok, err := first(math.MinInt64)
	if err != nil {
		return 0, fmt.Errorf("storage: pruning push actions: %w", err)
	}
	if !ok || ts >= beforeTS {
		return 0, nil
	}
	var high int64
	if err := tx.QueryRow(ctx, `SELECT MAX(stream_pos) FROM event_push_actions`).Scan(&high); err != nil {
		return 0, fmt.Errorf("storage: pruning push actions: %w", err)
	}
	high++ // low's action is older than beforeTS; none at or after high is
	for high-low > 1 {
		mid := low + (high-low)/2
		at, ts, ok, err := first(mid)
		if err != nil {
			return 0, fmt.Errorf("storage: pruning push actions: %w", err)
		}
		if ok && ts < beforeTS {
			low = at
		} else {
			high = mid
		}
	}
	tx.pushActionsDeleted = true
	res, err := tx.Exec(ctx, `DELETE FROM event_push_actions WHERE stream_pos <= $1 AND ts < $2`, low, beforeTS)
	if err != nil {
		return 0, fmt.Errorf("storage: pruning push actions: %w", err)
	}
	return res.RowsAffected()
}

// TimelineEventsAfter returns the timeline events after a stream position, in stream order,
// with their bodies.
func TimelineEventsAfter(ctx context.Context, r Reader, from int64, limit int) ([]EventRecord, error) {
	return queryEvents(ctx, r, `SELECT `+eventColumns+` FROM events WHERE stream_pos > $1 ORDER BY stream_pos LIMIT $2`, from, limit)
}

// GlobalAccountDataOfUsers returns one type of global account data of each of users who has
// it, by user.
func GlobalAccountDataOfUsers(ctx context.Context, r Reader, users []string, dataType string) (map[string]json.RawMessage, error) {
	out := map[string]json.RawMessage{}
	err := eachRowIn(ctx, r, func(in string) string {
		return `SELECT user_id, content FROM account_data WHERE data_type = $1 AND room_id = '' AND user_id IN (` + in + `)`
	}, []any{dataType}, users, func(scan func(...any) error) error {
		var user, content string
		if err := scan(&user, &content); err != nil {
			return err
		}
		out[user] = json.RawMessage(content)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: reading account data: %w", err)
	}
	return out, nil
}

// JoinedMembersWithJoinPos returns the users joined to a room now, with the stream position of
// their latest join.
func JoinedMembersWithJoinPos(ctx context.Context, r Reader, room RoomNID) (map[string]int64, error) {
	rows, err := r.Query(ctx, `SELECT user_id, join_pos FROM memberships WHERE room_nid = $1 AND membership = 'join'`, room)
	if err != nil {
		return nil, fmt.Errorf("storage: reading room members: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var (
			user string
			pos  int64
		)
		if err := rows.Scan(&user, &pos); err != nil {
			return nil, fmt.Errorf("storage: reading room members: %w", err)
		}
		out[user] = pos
	}
	return out, rows.Err()
}
