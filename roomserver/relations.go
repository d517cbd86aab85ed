package roomserver

import (
	"context"

	"myelin/roomserver/event"
	"myelin/storage"
)

// indexRelation records the m.relates_to of ev, if it has a valid one, for /relations,
// /threads and the bundled aggregations. The parent need not be stored yet: over federation a
// child may arrive first. Whether the parent is in the same room is checked when the relation
// is read, once both are known.
func indexRelation(ctx context.Context, tx *storage.Tx, room storage.RoomNID, ev *event.Event, nid storage.EventNID, pos int64) error {
	rel, ok := ev.RelatesTo()
	if !ok {
		return nil
	}
	return tx.IndexRelation(ctx, storage.Relation{
		ChildNID: nid, ChildID: ev.ID(), Room: room, ParentID: rel.EventID, RelType: rel.RelType,
		ChildType: ev.Type(), Sender: ev.Sender(), Depth: ev.Depth(), StreamPos: pos,
		OriginServerTS: ev.OriginServerTS(), Key: rel.Key,
	})
}
