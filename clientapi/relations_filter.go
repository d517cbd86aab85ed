package clientapi

import (
	"context"

	"myelin/mxhttp"
	"myelin/roomserver/event"
	"myelin/storage"
)

// relatedBy applies the related_by_rel_types and related_by_senders fields of a
// RoomEventFilter (as Synapse does, from the threads proposal): it keeps the events of evs that
// have a child of one of the rel_types, sent by one of the senders. A filter without them
// keeps everything, without a query.
func (a *API) relatedBy(ctx context.Context, f *RoomEventFilter, evs []*event.Event) ([]*event.Event, error) {
	if f == nil || (f.RelatedByRelTypes == nil && f.RelatedBySenders == nil) || len(evs) == 0 {
		return evs, nil
	}
	ids := make([]string, len(evs))
	for i, ev := range evs {
		ids[i] = ev.ID()
	}
	related, err := storage.ParentsRelatedBy(ctx, a.db, ids, f.RelatedByRelTypes, f.RelatedBySenders)
	if err != nil {
		return nil, mxhttp.Internal(err)
	}
	out := make([]*event.Event, 0, len(related))
	for _, ev := range evs {
		if related[ev.ID()] {
			out = append(out, ev)
		}
	}
	return out, nil
}
