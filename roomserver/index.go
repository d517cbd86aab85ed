package roomserver

import (
	"context"

	"myelin/roomserver/event"
	"myelin/storage"
)

// The room server keeps tables derived from event content (relations between events, the
// full-text search index) in step with the events themselves. indexEvent runs in the
// transaction that stores an event clients may come to see: accepted into a timeline, or
// stored as an outlier without being rejected (soft-failed and rejected events are never
// indexed). unindexEvent runs in the transaction that prunes an event's content because of a
// redaction. So no derived table ever holds what the events no longer do, and each index is
// one function call here, whichever path (local input, remote input, join, outlier) stored
// the event. The one exception is the text of timeline events for full-text search, which the
// search indexer adds after the commit, in batches (search_indexer.go): a redaction then
// either comes first, and the indexer reads the pruned event, or removes what it added.

// indexEvent indexes ev, stored in room as nid at stream position pos (0 for an outlier). It is
// called once per event, in the transaction that inserted it under the fresh nid: the indexes
// add rows without looking for earlier ones.
func indexEvent(ctx context.Context, tx *storage.Tx, room storage.RoomNID, ev *event.Event, nid storage.EventNID, pos int64) error {
	// Relations (m.relates_to, cleartext even in encrypted events): relations.go.
	if err := indexRelation(ctx, tx, room, ev, nid, pos); err != nil {
		return err
	}
	if err := indexSearch(ctx, tx, room, ev, nid, pos); err != nil { // search_index.go
		return err
	}
	return nil
}

// unindexEvent forgets what the indexes hold of the event nid (eventID), whose content a
// redaction has just pruned.
func unindexEvent(ctx context.Context, tx *storage.Tx, room storage.RoomNID, nid storage.EventNID, eventID string) error {
	// A redacted child leaves its parent's aggregations (a redacted edit reverts it); a
	// redacted parent keeps its children, whose rows name it by id.
	if err := tx.UnindexRelation(ctx, nid); err != nil {
		return err
	}
	if err := unindexSearch(ctx, tx, nid); err != nil { // search_index.go
		return err
	}
	// A redacted event no longer counts as a notification, nor is listed (push/pusher).
	if err := tx.DeletePushActionsOfEvent(ctx, eventID); err != nil {
		return err
	}
	return nil
}
