package storage_test

import (
	"context"
	"errors"
	"testing"

	"myelin/storage"
	"myelin/storage/storagetest"
)

func TestMedia(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		tx := func(fn func(tx *storage.Tx) error) error { return db.WithTx(ctx, fn) }
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		local := storage.Media{Origin: "hs1", MediaID: "aaa", ContentHash: "h1", ContentType: "image/png",
			UploadName: "a.png", Size: 100, Uploader: "@a:hs1", CreatedTS: 10, UploadedTS: 10, LastAccessTS: 10}
		must(tx(func(tx *storage.Tx) error { return tx.InsertMedia(ctx, local) }))
		if err := tx(func(tx *storage.Tx) error { return tx.InsertMedia(ctx, local) }); !errors.Is(err, storage.ErrConflict) {
			t.Fatalf("duplicate insert: %v, want ErrConflict", err)
		}
		got, err := storage.GetMedia(ctx, db, "hs1", "aaa")
		must(err)
		if got != local {
			t.Fatalf("got %+v, want %+v", got, local)
		}
		if _, err := storage.GetMedia(ctx, db, "hs1", "nope"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("unknown media: %v", err)
		}

		// A pending upload counts towards the pending limit until completed, once.
		pending := storage.Media{Origin: "hs1", MediaID: "bbb", Uploader: "@a:hs1", CreatedTS: 20, UnusedExpiresTS: 1000, LastAccessTS: 20}
		must(tx(func(tx *storage.Tx) error { return tx.InsertMedia(ctx, pending) }))
		if n, err := storage.CountPendingMedia(ctx, db, "@a:hs1", 30); err != nil || n != 1 {
			t.Fatalf("pending = %d, %v", n, err)
		}
		if n, _ := storage.CountPendingMedia(ctx, db, "@a:hs1", 2000); n != 0 {
			t.Fatalf("expired pending counted: %d", n)
		}
		done := pending
		done.ContentHash, done.ContentType, done.Size, done.UploadedTS = "h1", "text/plain", 50, 40
		must(tx(func(tx *storage.Tx) error { return tx.CompletePendingMedia(ctx, done) }))
		if err := tx(func(tx *storage.Tx) error { return tx.CompletePendingMedia(ctx, done) }); !errors.Is(err, storage.ErrConflict) {
			t.Fatalf("second upload: %v, want ErrConflict", err)
		}
		missing := done
		missing.MediaID = "zzz"
		if err := tx(func(tx *storage.Tx) error { return tx.CompletePendingMedia(ctx, missing) }); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("unknown upload: %v, want ErrNotFound", err)
		}
		if n, _ := storage.MediaUsage(ctx, db, "@a:hs1"); n != 150 {
			t.Fatalf("usage = %d, want 150", n)
		}

		// Remote media, its thumbnail, and clean-up.
		remote := storage.Media{Origin: "hs2", MediaID: "ccc", ContentHash: "h2", Size: 5, CreatedTS: 5, UploadedTS: 5, LastAccessTS: 5}
		must(tx(func(tx *storage.Tx) error { return tx.InsertMedia(ctx, remote) }))
		th := storage.MediaThumbnail{Origin: "hs2", MediaID: "ccc", Width: 32, Height: 32, Method: "crop", ContentHash: "h3", ContentType: "image/png", Size: 3, CreatedTS: 6}
		must(tx(func(tx *storage.Tx) error { return tx.InsertMediaThumbnail(ctx, th) }))
		must(tx(func(tx *storage.Tx) error { return tx.InsertMediaThumbnail(ctx, th) }))
		ths, err := storage.GetMediaThumbnails(ctx, db, "hs2", "ccc")
		must(err)
		if len(ths) != 1 || ths[0] != th {
			t.Fatalf("thumbnails = %+v", ths)
		}
		stale, err := storage.ListStaleMedia(ctx, db, "hs1", 8, 30, 10)
		must(err)
		if len(stale) != 1 || stale[0] != (storage.MediaKey{Origin: "hs2", MediaID: "ccc"}) {
			t.Fatalf("stale = %+v", stale)
		}
		must(tx(func(tx *storage.Tx) error { return tx.TouchMedia(ctx, "hs2", "ccc", 9) }))
		if stale, _ := storage.ListStaleMedia(ctx, db, "hs1", 8, 30, 10); len(stale) != 0 {
			t.Fatalf("touched media still stale: %+v", stale)
		}
		var hashes []string
		must(tx(func(tx *storage.Tx) (err error) { hashes, err = tx.DeleteMedia(ctx, "hs2", "ccc"); return err }))
		if len(hashes) != 2 {
			t.Fatalf("hashes = %v", hashes)
		}
		for _, c := range []struct {
			hash string
			used bool
		}{{"h1", true}, {"h2", false}, {"h3", false}} {
			if used, err := storage.MediaHashInUse(ctx, db, c.hash); err != nil || used != c.used {
				t.Fatalf("hash %s in use = %v, %v", c.hash, used, err)
			}
		}
		keys, err := storage.ListUserMedia(ctx, db, "@a:hs1")
		must(err)
		if len(keys) != 2 {
			t.Fatalf("user media = %+v", keys)
		}
	})
}
