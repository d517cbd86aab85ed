package storage_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"myelin/storage"
	"myelin/storage/storagetest"
)

func TestStreamPositionsIncreaseAcrossConcurrentTransactions(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		if pos, err := storage.CurrentStreamPosition(ctx, db, "timeline"); err != nil || pos != 0 {
			t.Fatalf("position of an unused stream = %d, %v; want 0", pos, err)
		}

		const workers, perWorker = 6, 25
		var (
			mu  sync.Mutex
			all []int64
			wg  sync.WaitGroup
		)
		for range workers {
			wg.Go(func() {
				var mine []int64
				for range perWorker {
					var pos int64
					err := db.WithTx(ctx, func(tx *storage.Tx) error {
						var err error
						pos, err = tx.NextStreamPosition(ctx, "timeline")
						return err
					})
					if err != nil {
						t.Error(err)
						return
					}
					if len(mine) > 0 && pos <= mine[len(mine)-1] {
						t.Errorf("position %d after %d in one goroutine", pos, mine[len(mine)-1])
					}
					mine = append(mine, pos)
				}
				mu.Lock()
				all = append(all, mine...)
				mu.Unlock()
			})
		}
		wg.Wait()

		slices.Sort(all)
		for i, pos := range all {
			if pos != int64(i+1) {
				t.Fatalf("positions handed out: %v; want each of 1..%d exactly once", all, workers*perWorker)
			}
		}
		if pos, err := storage.CurrentStreamPosition(ctx, db, "timeline"); err != nil || pos != workers*perWorker {
			t.Errorf("current position = %d, %v; want %d", pos, err, workers*perWorker)
		}
	})
}

func TestStreamPositions(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		next := func(stream string) int64 {
			t.Helper()
			var pos int64
			if err := db.WithTx(ctx, func(tx *storage.Tx) (err error) {
				pos, err = tx.NextStreamPosition(ctx, stream)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			return pos
		}
		if a, b, c := next("receipts"), next("receipts"), next("typing"); a != 1 || b != 2 || c != 1 {
			t.Errorf("positions = %d, %d on one stream, %d on another; want 1, 2, 1", a, b, c)
		}

		// A rolled-back allocation is given out again: nobody can have seen it.
		_ = db.WithTx(ctx, func(tx *storage.Tx) error {
			if _, err := tx.NextStreamPosition(ctx, "receipts"); err != nil {
				return err
			}
			return context.Canceled
		})
		if got := next("receipts"); got != 3 {
			t.Errorf("after a rolled-back allocation, next = %d; want 3", got)
		}
	})
}

// CurrentStreamPositions reads several streams at once, in the order asked, 0 for one unused.
func TestCurrentStreamPositions(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		err := db.WithTx(ctx, func(tx *storage.Tx) error {
			for _, s := range []string{"a", "b", "b", "c", "c", "c"} {
				if _, err := tx.NextStreamPosition(ctx, s); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		got, err := storage.CurrentStreamPositions(ctx, db, "c", "unused", "a", "b")
		if err != nil || !slices.Equal(got, []int64{3, 0, 1, 2}) {
			t.Fatalf("positions = %v, %v; want [3 0 1 2]", got, err)
		}
	})
}

// A rolled-back allocation is handed out again, and a position changed behind
// NextStreamPosition's back (another process, a statement of its own) is never handed out
// twice: SQLite's writer knows the position it committed last and checks it (streams.go).
func TestStreamPositionsAfterRollbackAndOutsideChanges(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		next := func(n int, fail bool) []int64 {
			t.Helper()
			var got []int64
			errRollback := errors.New("roll back")
			err := db.WithTx(ctx, func(tx *storage.Tx) error {
				for range n {
					pos, err := tx.NextStreamPosition(ctx, "timeline")
					if err != nil {
						return err
					}
					got = append(got, pos)
				}
				if fail {
					return errRollback
				}
				return nil
			})
			if err != nil && !errors.Is(err, errRollback) {
				t.Fatal(err)
			}
			return got
		}
		for _, c := range []struct {
			n    int
			fail bool
			want []int64
		}{
			{1, false, []int64{1}},
			{2, true, []int64{2, 3}}, // rolled back
			{2, false, []int64{2, 3}},
		} {
			if got := next(c.n, c.fail); !slices.Equal(got, c.want) {
				t.Fatalf("positions %v, want %v", got, c.want)
			}
		}
		if err := db.WithTx(ctx, func(tx *storage.Tx) error {
			_, err := tx.Exec(ctx, `UPDATE stream_positions SET pos = pos + 10 WHERE stream = $1`, "timeline")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if got := next(2, false); !slices.Equal(got, []int64{14, 15}) {
			t.Fatalf("after the row moved to 13 outside: %v, want [14 15]", got)
		}
		if pos, err := storage.CurrentStreamPosition(ctx, db, "timeline"); err != nil || pos != 15 {
			t.Fatalf("current position = %d, %v; want 15", pos, err)
		}
	})
}
