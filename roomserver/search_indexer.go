package roomserver

import (
	"context"
	"encoding/json"
	"time"

	"github.com/sirupsen/logrus"

	"myelin/storage"
)

// The search indexer adds the text of timeline events to the full-text index after they are
// stored, in batches, instead of in the transaction that stores each event. SQLite's FTS4
// writes a segment of several pages per transaction: one per message cost about a third of a
// message's pages (issue 9), one per batch costs next to nothing per message. Search results
// never run ahead of what is indexed: POST /search first calls SearchIndexed, which indexes
// whatever the indexer has not reached yet.
//
// What it indexes is decided by indexSearch's rules (search_index.go); it reads each event in
// its own write transaction, so it sees a redaction that committed before it, and a redaction
// that commits after it removes what it indexed (unindexEvent). On PostgreSQL the events it
// reads are locked FOR SHARE for that reason. Events placed on a timeline at negative
// (backfill) positions are behind the indexer's position and are indexed when stored.

const (
	// searchWorker is the indexer's row in worker_positions.
	searchWorker = "search"
	// searchIndexBatch is how many events one transaction indexes.
	searchIndexBatch = 500
	// searchIndexLinger is how long the background indexer lets new events gather before
	// indexing them. Searches do not wait for it.
	searchIndexLinger = 100 * time.Millisecond
)

// SearchIndexed indexes, before it returns, every timeline event stored so far: a search that
// follows sees them.
func (s *Server) SearchIndexed(ctx context.Context) error {
	s.searchMu.Lock()
	defer s.searchMu.Unlock()
	for {
		n, err := s.indexSearchBatch(ctx)
		if err != nil || n < searchIndexBatch {
			return err
		}
	}
}

// RunSearchIndexer indexes new timeline events for search shortly after they are stored, until
// ctx ends.
func (s *Server) RunSearchIndexer(ctx context.Context, log *logrus.Entry) {
	wake := make(chan struct{}, 1)
	defer s.Subscribe(func(NewEvent) {
		select {
		case wake <- struct{}{}:
		default:
		}
	})()
	for {
		if err := s.SearchIndexed(ctx); err != nil && ctx.Err() == nil {
			log.WithError(err).Error("could not index events for search")
		}
		select {
		case <-wake:
		case <-time.After(time.Minute): // after an error, or events stored by another process
		case <-ctx.Done():
			return
		}
		select {
		case <-time.After(searchIndexLinger):
		case <-ctx.Done():
			return
		}
	}
}

// indexSearchBatch indexes the next events after the indexer's position in one transaction and
// returns how many it read.
func (s *Server) indexSearchBatch(ctx context.Context) (int, error) {
	var n int
	err := s.db.WithTx(ctx, func(tx *storage.Tx) error {
		pos, err := tx.WorkerPosition(ctx, searchWorker)
		if err != nil {
			return err
		}
		recs, err := tx.TimelineEventsToIndex(ctx, pos, searchIndexBatch)
		if err != nil || len(recs) == 0 {
			return err
		}
		n = len(recs)
		for _, rec := range recs {
			if rec.Rejected || rec.SoftFailed || rec.JSON == nil {
				continue
			}
			var e struct {
				Content json.RawMessage `json:"content"`
			}
			if json.Unmarshal(rec.JSON, &e) != nil {
				continue
			}
			key, text := searchText(rec.Type, rec.StateKey, e.Content)
			if text == "" {
				continue
			}
			err := tx.IndexSearch(ctx, storage.SearchEntry{Event: rec.NID, Room: rec.Room, Key: key, StreamPos: rec.StreamPos, Value: text})
			if err != nil {
				return err
			}
		}
		return tx.SetWorkerPosition(ctx, searchWorker, recs[len(recs)-1].StreamPos)
	})
	return n, err
}
