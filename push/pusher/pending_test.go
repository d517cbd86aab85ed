package pusher

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"myelin/keys"
	"myelin/push"
	"myelin/roomserver"
	"myelin/roomserver/event"
	"myelin/storage"
	"myelin/storage/storagetest"
)

const (
	alice = "@alice:x.test"
	bob   = "@bob:x.test"
	carol = "@carol:x.test"
)

// pendingEnv is a room of three local users, alice (its creator), bob and carol, and what the
// tests of pending actions need around it.
type pendingEnv struct {
	t     *testing.T
	ctx   context.Context
	db    *storage.DB
	rooms *roomserver.Server
	room  string
}

func newPendingEnv(t *testing.T, db *storage.DB) *pendingEnv {
	t.Helper()
	ctx := context.Background()
	key, err := keys.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	e := &pendingEnv{t: t, ctx: ctx, db: db, rooms: roomserver.New(db, "x.test", key, roomserver.Options{})}
	if e.room, err = e.rooms.CreateRoom(ctx, roomserver.CreateRoomRequest{Creator: alice, Preset: roomserver.PresetPublicChat}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{bob, carol} {
		if _, err := e.rooms.Join(ctx, e.room, u); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func (e *pendingEnv) newWorker() *Worker {
	return New(Config{ServerName: "x.test", DB: e.db, Rules: push.NewStore(e.db), Waker: &lastWaker{}}, discardLog())
}

// worker returns a worker over the database, its position loaded as Run loads it.
func (e *pendingEnv) worker() *Worker {
	e.t.Helper()
	w := e.newWorker()
	if _, err := w.load(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	return w
}

func (e *pendingEnv) send(sender, body string) string {
	e.t.Helper()
	content, _ := json.Marshal(map[string]string{"msgtype": "m.text", "body": body})
	ev, err := e.rooms.SendEvent(e.ctx, event.Proto{RoomID: e.room, Type: "m.room.message", Sender: sender, Content: content})
	if err != nil {
		e.t.Fatal(err)
	}
	return ev.ID()
}

func (e *pendingEnv) redact(sender, eventID string) {
	e.t.Helper()
	if _, err := e.rooms.Redact(e.ctx, e.room, sender, eventID, ""); err != nil {
		e.t.Fatal(err)
	}
}

// step has w evaluate the events after its position, and flush when asked.
func (e *pendingEnv) step(w *Worker, asked bool) {
	e.t.Helper()
	if _, err := w.processBatch(e.ctx, w.Position(), asked, false); err != nil {
		e.t.Fatal(err)
	}
}

// count is the user's notification count in the room, as /sync reads it through w.
func (e *pendingEnv) count(w *Worker, user string) int {
	e.t.Helper()
	counts, err := w.UnreadCounts(e.ctx, user, []string{e.room})
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for _, c := range counts {
		n += c.Notifications
	}
	return n
}

// written are the events of the user's actions written to the database, newest first.
func (e *pendingEnv) written(user string) []string {
	e.t.Helper()
	acts, err := storage.PushActions(e.ctx, e.db, storage.NotificationsQuery{UserID: user, Limit: 100})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, a := range acts {
		out = append(out, a.EventID)
	}
	return out
}

func (e *pendingEnv) position() int64 {
	e.t.Helper()
	pos, err := storage.CurrentStreamPosition(e.ctx, e.db, "events")
	if err != nil {
		e.t.Fatal(err)
	}
	return pos
}

// Pending actions count in /sync's counts, the badge and the rooms with changes; a receipt or
// an own event reads them; a flush writes them once.
func TestPendingActionsAreCounted(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		e := newPendingEnv(t, db)
		w := e.worker()
		from := w.Position()
		m1 := e.send(alice, "one")
		m2 := e.send(alice, "two")
		e.step(w, false)
		if got := e.written(bob); len(got) != 0 {
			t.Fatalf("written before a flush: %v", got)
		}
		if n := e.count(w, bob); n != 2 {
			t.Fatalf("bob's count with two pending actions: %d", n)
		}
		if n, err := w.totalUnread(e.ctx, bob); n != 2 || err != nil {
			t.Fatalf("bob's badge: %d %v", n, err)
		}
		to := w.Position()
		if rooms, err := w.RoomsWithCountChanges(e.ctx, bob, from, to, 0, 0); err != nil || !slices.Equal(rooms, []string{e.room}) {
			t.Fatalf("rooms with changes: %v %v", rooms, err)
		}
		if rooms, _ := w.RoomsWithCountChanges(e.ctx, bob, to, to, 0, 0); len(rooms) != 0 {
			t.Fatalf("rooms with changes after the last action: %v", rooms)
		}

		// A receipt reads pending actions, as it reads written ones.
		err := db.WithTx(e.ctx, func(tx *storage.Tx) error {
			_, err := tx.UpsertReceipt(e.ctx, storage.Receipt{RoomID: e.room, UserID: bob, Type: "m.read", EventID: m1})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if n := e.count(w, bob); n != 1 {
			t.Fatalf("bob's count after a receipt on the first: %d", n)
		}
		// So does an own event: carol writes.
		m3 := e.send(carol, "three")
		e.step(w, false)
		if n := e.count(w, carol); n != 0 {
			t.Fatalf("carol's count after she wrote: %d", n)
		}
		if n := e.count(w, bob); n != 2 {
			t.Fatalf("bob's count after carol wrote: %d", n)
		}

		// A flush writes each action once, with the position.
		e.step(w, true)
		if got := e.written(bob); !slices.Equal(got, []string{m3, m2, m1}) {
			t.Fatalf("bob's actions written: %v", got)
		}
		if n := e.count(w, bob); n != 2 {
			t.Fatalf("bob's count after the flush: %d", n)
		}
		if pos, _, err := storage.PushWorkerPosition(e.ctx, db); pos != w.Position() || err != nil {
			t.Fatalf("position written %d %v, in memory %d", pos, err, w.Position())
		}
	})
}

// A redacted event's pending actions are dropped, and those a flush wrote after the room server
// deleted the recorded ones are deleted.
func TestRedactedPendingActions(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		e := newPendingEnv(t, db)
		w := e.worker()
		m1 := e.send(alice, "one")
		m2 := e.send(alice, "two")
		e.step(w, false)
		e.redact(alice, m1)
		e.step(w, false)
		if n := e.count(w, bob); n != 1 {
			t.Fatalf("bob's count after a redaction: %d", n)
		}
		e.step(w, true)
		if got := e.written(bob); !slices.Equal(got, []string{m2}) {
			t.Fatalf("written after the redaction of a pending event: %v", got)
		}

		// m3 is pending when the room server redacts it, and flushed before the worker reads
		// the redaction.
		m3 := e.send(alice, "three")
		e.step(w, false)
		e.redact(alice, m3)
		if err := w.commit(e.ctx, &batch{next: w.Position()}, true); err != nil {
			t.Fatal(err)
		}
		if got := e.written(bob); !slices.Equal(got, []string{m3, m2}) {
			t.Fatalf("flushed: %v", got)
		}
		e.step(w, false)
		if got := e.written(bob); !slices.Equal(got, []string{m2}) {
			t.Fatalf("written after the redaction of a flushed event: %v", got)
		}
		if n := e.count(w, bob); n != 1 {
			t.Fatalf("bob's count: %d", n)
		}
	})
}

// The pending actions of a user whose account was deactivated are not written.
func TestDeactivatedUsersPendingActions(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		e := newPendingEnv(t, db)
		err := db.WithTx(e.ctx, func(tx *storage.Tx) error {
			for _, lp := range []string{"bob", "carol"} {
				if err := tx.InsertAccount(e.ctx, storage.Account{Localpart: lp, CreatedTS: 1}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		w := e.worker()
		m1 := e.send(alice, "one")
		m2 := e.send(bob, "bob's own")
		e.step(w, false)
		err = db.WithTx(e.ctx, func(tx *storage.Tx) error {
			if _, err := tx.DeactivateAccount(e.ctx, "bob", 2); err != nil {
				return err
			}
			return tx.DeleteUserPushActions(e.ctx, bob)
		})
		if err != nil {
			t.Fatal(err)
		}
		e.step(w, true)
		if got := e.written(bob); len(got) != 0 {
			t.Fatalf("a deactivated user's actions written: %v", got)
		}
		if reads, err := storage.UserReadPositions(e.ctx, db, bob, []string{e.room}); err != nil || len(reads) != 0 {
			t.Fatalf("a deactivated user's own read written: %v %v", reads, err)
		}
		if got := e.written(carol); !slices.Equal(got, []string{m2, m1}) {
			t.Fatalf("carol's actions: %v", got)
		}
	})
}

// An action for a user with an HTTP pusher is written at once: delivery reads it from the
// database. Ignored senders notify no one.
func TestPusherUsersActionsWrittenAtOnce(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		e := newPendingEnv(t, db)
		w := e.worker()
		w.deliver.httpPushers[bob] = []pusherKey{{bob, "app", "key"}}
		err := db.WithTx(e.ctx, func(tx *storage.Tx) error {
			_, err := tx.SetAccountData(e.ctx, carol, "", "m.ignored_user_list", json.RawMessage(`{"ignored_users":{"`+alice+`":{}}}`))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		m1 := e.send(alice, "one")
		e.step(w, false)
		if got := e.written(bob); !slices.Equal(got, []string{m1}) {
			t.Fatalf("bob's actions: %v", got)
		}
		if n := e.count(w, carol); n != 0 {
			t.Fatalf("carol ignores alice, yet counts %d", n)
		}
	})
}

// Ignore lists are cached between batches and read again once one changes: carol's count
// follows her list as she ignores alice, stops and ignores her again; an erased account's list
// goes too.
func TestIgnoreListsFollowChanges(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		e := newPendingEnv(t, db)
		w := e.worker()
		setList := func(ignored string) {
			t.Helper()
			err := db.WithTx(e.ctx, func(tx *storage.Tx) error {
				_, err := tx.SetAccountData(e.ctx, carol, "", storage.IgnoredUserListType, json.RawMessage(`{"ignored_users":{`+ignored+`}}`))
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		counted := 0
		sendAndCount := func(want int) {
			t.Helper()
			e.send(alice, "hi")
			e.step(w, false)
			counted += want
			if n := e.count(w, carol); n != counted {
				t.Fatalf("carol counts %d, want %d", n, counted)
			}
		}
		sendAndCount(1)
		setList(`"` + alice + `":{}`)
		sendAndCount(0)
		sendAndCount(0)
		setList(``)
		sendAndCount(1)
		setList(`"` + alice + `":{}`)
		sendAndCount(0)
		err := db.WithTx(e.ctx, func(tx *storage.Tx) error { return tx.DeleteUserSyncData(e.ctx, carol, "carol") })
		if err != nil {
			t.Fatal(err)
		}
		sendAndCount(1)
	})
}

// Run moves its position as it evaluates, writes on Flush and when it returns; a worker that
// stopped without writing (a crash) loses only what was pending, which the next evaluates
// again from the position written, counting each event once.
func TestRunFlushesAndResumes(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		e := newPendingEnv(t, db)
		run := func(w *Worker) (stop func()) {
			ctx, cancel := context.WithCancel(e.ctx)
			unsubscribe := e.rooms.Subscribe(w.OnNewEvent)
			done := make(chan error, 1)
			go func() { done <- w.Run(ctx) }()
			return func() {
				unsubscribe()
				cancel()
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			}
		}
		waitFor := func(w *Worker, pos int64) {
			t.Helper()
			deadline := time.Now().Add(10 * time.Second)
			for w.WaitFor(e.ctx, pos, time.Second) < pos {
				if time.Now().After(deadline) {
					t.Fatalf("the worker is at %d, not %d", w.Position(), pos)
				}
			}
		}

		w1 := e.newWorker()
		stop := run(w1)
		waitFor(w1, e.position())
		m1 := e.send(alice, "one")
		waitFor(w1, e.position())
		if n := e.count(w1, bob); n != 1 {
			t.Fatalf("bob's count: %d", n)
		}
		if err := w1.Flush(e.ctx); err != nil {
			t.Fatal(err)
		}
		if got := e.written(bob); !slices.Equal(got, []string{m1}) {
			t.Fatalf("written after Flush: %v", got)
		}
		m2 := e.send(alice, "two")
		waitFor(w1, e.position())
		stop()
		if got := e.written(bob); !slices.Equal(got, []string{m2, m1}) {
			t.Fatalf("written when Run returned: %v", got)
		}
		if pos, _, _ := storage.PushWorkerPosition(e.ctx, db); pos != e.position() {
			t.Fatalf("position written %d, stream at %d", pos, e.position())
		}
		if err := w1.Flush(e.ctx); err != nil {
			t.Fatalf("Flush after Run: %v", err)
		}

		// A worker that evaluates m3 and stops without writing it.
		crashed := e.worker()
		m3 := e.send(alice, "three")
		e.step(crashed, false)
		if n := e.count(crashed, bob); n != 3 {
			t.Fatalf("bob's count before the crash: %d", n)
		}

		w2 := e.worker()
		if n := e.count(w2, bob); n != 2 {
			t.Fatalf("bob's count after the crash, before evaluating again: %d", n)
		}
		stop = run(w2)
		waitFor(w2, e.position())
		if n := e.count(w2, bob); n != 3 {
			t.Fatalf("bob's count after evaluating again: %d", n)
		}
		stop()
		if got := e.written(bob); !slices.Equal(got, []string{m3, m2, m1}) {
			t.Fatalf("written at last: %v", got)
		}
		if n, err := storage.TotalUnread(e.ctx, db, bob, math.MaxInt64); n != 3 || err != nil {
			t.Fatalf("bob's recorded total: %d %v", n, err)
		}
	})
}

// Counts kept between /syncs (countcache.go) follow new actions, receipts, own events and
// redactions as a fresh count does.
func TestKeptCountsMatchFreshCounts(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		e := newPendingEnv(t, db)
		w := e.worker()
		check := func(when string) {
			t.Helper()
			kept := e.count(w, bob)
			fresh, err := storage.UnreadCounts(e.ctx, db, bob, []string{e.room}, math.MaxInt64)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, c := range fresh {
				n += c.Notifications
			}
			// Everything is flushed before each check, so the database holds every action.
			if kept != n {
				t.Fatalf("%s: kept count %d, fresh count %d", when, kept, n)
			}
		}
		sendFlush := func(sender, body string) string {
			id := e.send(sender, body)
			e.step(w, true)
			return id
		}
		m1 := sendFlush(alice, "one")
		check("one action")
		sendFlush(alice, "two")
		check("two actions")
		if n := e.count(w, bob); n != 2 {
			t.Fatalf("bob's count: %d, want 2", n)
		}
		err := db.WithTx(e.ctx, func(tx *storage.Tx) error {
			_, err := tx.UpsertReceipt(e.ctx, storage.Receipt{RoomID: e.room, UserID: bob, Type: "m.read", EventID: m1})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		check("after a receipt")
		m3 := sendFlush(alice, "three")
		check("a new action after the receipt")
		e.redact(alice, m3)
		check("after a redaction") // the room server deleted the action: the kept count is stale
		sendFlush(bob, "bob writes")
		check("after bob's own event")
		if n := e.count(w, bob); n != 0 {
			t.Fatalf("bob's count after he wrote: %d", n)
		}
	})
}

// A large flush writes the oldest actions first, in transactions of about flushChunk, each
// moving the recorded position; the counts stay the same throughout.
func TestFlushInChunks(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		e := newPendingEnv(t, db)
		w := e.worker()
		const sent = flushChunk*3/4 + 10 // two actions each: bob's and carol's
		for i := range sent {
			e.send(alice, fmt.Sprint("m", i))
		}
		for w.Position() < e.position() {
			e.step(w, false)
		}
		if w.nPending != 2*sent {
			t.Fatalf("%d pending", w.nPending)
		}
		if err := w.flushOldest(e.ctx); err != nil {
			t.Fatal(err)
		}
		_, recorded := w.pendingOf(bob)
		if w.nPending > flushChunk || recorded >= w.Position() || recorded <= 0 {
			t.Fatalf("after flushOldest: %d pending, recorded %d, position %d", w.nPending, recorded, w.Position())
		}
		written, err := storage.PushActions(e.ctx, db, storage.NotificationsQuery{UserID: bob, Limit: 2 * sent})
		if err != nil {
			t.Fatal(err)
		}
		pending, _ := w.pendingOf(bob)
		if len(written)+len(pending) != sent || len(written) == 0 {
			t.Fatalf("bob: %d written and %d pending of %d", len(written), len(pending), sent)
		}
		for _, a := range written {
			if a.StreamPos > recorded {
				t.Fatalf("written after the recorded position %d: %d", recorded, a.StreamPos)
			}
		}
		for _, a := range pending {
			if a.StreamPos <= recorded {
				t.Fatalf("pending at or before the recorded position %d: %d", recorded, a.StreamPos)
			}
		}
		if pos, _, err := storage.PushWorkerPosition(e.ctx, db); pos != recorded || err != nil {
			t.Fatalf("position written %d %v, recorded %d", pos, err, recorded)
		}
		// Alice's own read is her last event's, after the recorded position: it waits for the
		// last transaction (a restart from the recorded position would find it again).
		if reads, err := storage.UserReadPositions(e.ctx, db, alice, []string{e.room}); err != nil || len(reads) != 0 {
			t.Fatalf("alice's own read written: %v %v, recorded %d", reads, err, recorded)
		}
		if n := e.count(w, bob); n != sent {
			t.Fatalf("bob's count: %d, want %d", n, sent)
		}
		e.step(w, true)
		if got, err := storage.PushActions(e.ctx, db, storage.NotificationsQuery{UserID: carol, Limit: 2 * sent}); len(got) != sent || err != nil {
			t.Fatalf("carol's actions written: %d %v", len(got), err)
		}
		if n := e.count(w, carol); n != sent || w.nPending != 0 {
			t.Fatalf("carol's count: %d, %d pending", n, w.nPending)
		}
		if reads, err := storage.UserReadPositions(e.ctx, db, alice, []string{e.room}); err != nil || reads.Of(e.room, "main") != w.Position() {
			t.Fatalf("alice's own read after the flush: %v %v, want %d", reads, err, w.Position())
		}
	})
}

// A user's own event reads their thread at once for the counts, but is written with the
// pending actions; a user with an HTTP pusher has theirs written at once, as their badge is
// counted from the database.
func TestOwnReadsPending(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		e := newPendingEnv(t, db)
		w := e.worker()
		written := func(user string) int64 {
			t.Helper()
			reads, err := storage.UserReadPositions(e.ctx, db, user, []string{e.room})
			if err != nil {
				t.Fatal(err)
			}
			return reads.Of(e.room, "main")
		}
		e.send(alice, "one")
		e.send(alice, "two")
		e.step(w, false)
		if n := e.count(w, carol); n != 2 {
			t.Fatalf("carol's count: %d", n)
		}
		e.send(carol, "three")
		e.step(w, false)
		if n := e.count(w, carol); n != 0 {
			t.Fatalf("carol's count after she wrote: %d", n)
		}
		if n, err := w.totalUnread(e.ctx, bob); n != 3 || err != nil {
			t.Fatalf("bob's badge: %d %v", n, err)
		}
		if pos := written(carol); pos != 0 {
			t.Fatalf("carol's own read written before a flush: %d", pos)
		}
		e.step(w, true)
		if pos := written(carol); pos != w.Position() {
			t.Fatalf("carol's own read after the flush: %d, want %d", pos, w.Position())
		}
		if n := e.count(w, carol); n != 0 {
			t.Fatalf("carol's count after the flush: %d", n)
		}

		// Bob has an HTTP pusher: his own event is written with its batch.
		w.deliver.mu.Lock()
		w.deliver.httpPushers[bob] = []pusherKey{{bob, "app", "key"}}
		w.deliver.mu.Unlock()
		e.send(bob, "four")
		e.step(w, false)
		if pos := written(bob); pos != w.Position() {
			t.Fatalf("bob's own read: %d, want %d", pos, w.Position())
		}
		if n, err := w.totalUnread(e.ctx, bob); n != 0 || err != nil {
			t.Fatalf("bob's badge after he wrote: %d %v", n, err)
		}
	})
}
