package storage_test

import (
	"context"
	"testing"

	"myelin/storage"
	"myelin/storage/storagetest"
)

// TestEraseReportsOf: an erased reporter's reasons, scores and user id go; the reports stay,
// with what they were about, and other users' reports are untouched.
func TestEraseReportsOf(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		score := int64(-100)
		reports := []storage.ContentReport{
			{ID: "r1", Kind: storage.ReportEvent, Reporter: "@a:x", RoomID: "!r:x", EventID: "$e", TargetUserID: "@b:x", Reason: "my words", Score: &score, ReceivedTS: 100},
			{ID: "r2", Kind: storage.ReportUser, Reporter: "@a:x", TargetUserID: "@b:x", Reason: "more words", ReceivedTS: 200},
			{ID: "r3", Kind: storage.ReportUser, Reporter: "@c:x", TargetUserID: "@a:x", Reason: "about a", Score: &score, ReceivedTS: 300},
		}
		var n int64
		err := db.WithTx(ctx, func(tx *storage.Tx) error {
			for _, r := range reports {
				if err := tx.InsertContentReport(ctx, r); err != nil {
					return err
				}
			}
			var err error
			n, err = tx.EraseReportsOf(ctx, "@a:x")
			return err
		})
		if err != nil || n != 2 {
			t.Fatalf("erased %d: %v", n, err)
		}
		all, err := storage.ListContentReports(ctx, db, 0, 0)
		if err != nil || len(all) != 3 {
			t.Fatalf("list: %+v %v", all, err)
		}
		for _, r := range all[:2] {
			if r.Reporter != storage.ErasedReporter || r.Reason != "" || r.Score != nil {
				t.Errorf("erased report keeps the reporter's data: %+v", r)
			}
		}
		if r := all[0]; r.Kind != storage.ReportEvent || r.RoomID != "!r:x" || r.EventID != "$e" || r.TargetUserID != "@b:x" || r.ReceivedTS != 100 {
			t.Errorf("erased report lost what it was about: %+v", r)
		}
		if r := all[2]; r.Reporter != "@c:x" || r.Reason != "about a" || r.Score == nil {
			t.Errorf("another user's report changed: %+v", r)
		}
	})
}
