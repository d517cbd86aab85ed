package clientapi

import (
	"cmp"
	"context"
	"encoding/json"
	"slices"

	"myelin/mxhttp"
	"myelin/roomserver/event"
	"myelin/storage"
)

// Bundled aggregations (client-server API, "Aggregations of child events"): every read path
// that serves timeline events to a client passes its page through bundleAggregations once,
// which fills unsigned["m.relations"] in a handful of queries for the whole page, whatever
// its size. Children the requester may not see (history visibility) are left out of what is
// shown of them.

// BundledRelations is unsigned["m.relations"]: the aggregations this server makes, keyed by
// rel_type. m.annotation is not aggregated by the server, as the spec says.
type BundledRelations struct {
	Replace   *ClientEvent        `json:"m.replace,omitempty"`
	Thread    *ThreadAggregation  `json:"m.thread,omitempty"`
	Reference *ReferenceAggregate `json:"m.reference,omitempty"`
}

// ThreadAggregation is the m.thread aggregation of a thread root.
type ThreadAggregation struct {
	LatestEvent             ClientEvent `json:"latest_event"`
	Count                   int64       `json:"count"`
	CurrentUserParticipated bool        `json:"current_user_participated"`
}

// ReferenceAggregate is the m.reference aggregation: the events that reference the parent.
type ReferenceAggregate struct {
	Chunk []ReferencedBy `json:"chunk"`
}

// ReferencedBy is one entry of an m.reference chunk.
type ReferencedBy struct {
	EventID string `json:"event_id"`
}

// maxBundledReferences bounds the m.reference chunk of one event (poll responses, for one,
// are references): the newest are kept.
const maxBundledReferences = 100

// aggregatedRelTypes are the rel_types the server aggregates.
var aggregatedRelTypes = []string{event.RelReplace, event.RelReference, event.RelThread}

// bundleAggregations sets unsigned["m.relations"] on out[i], the client form of evs[i], in
// the given format. The latest event of a thread is itself given its aggregations, but not
// that of a thread again (nested), which also ends any loop of relations.
func (a *API) bundleAggregations(ctx context.Context, who Requester, evs []*event.Event, out []ClientEvent, format EventFormat) error {
	return a.bundle(ctx, who, evs, out, format, false)
}

func (a *API) bundle(ctx context.Context, who Requester, evs []*event.Event, out []ClientEvent, format EventFormat, nested bool) error {
	parents := map[string]int{} // event id -> index in evs
	var ids []string
	for i, ev := range evs {
		// State events receive no bundled aggregations (the spec's warning).
		if ev.IsState() || i >= len(out) {
			continue
		}
		if _, dup := parents[ev.ID()]; !dup {
			parents[ev.ID()] = i
			ids = append(ids, ev.ID())
		}
	}
	if len(ids) == 0 {
		return nil
	}
	types := aggregatedRelTypes
	if nested {
		types = []string{event.RelReplace, event.RelReference}
	}
	counts, err := storage.CountRelations(ctx, a.db, ids, types, who.UserID)
	if err != nil {
		return mxhttp.Internal(err)
	}
	if len(counts) == 0 {
		return nil
	}
	var editParents, refParents, threadRoots []string
	for id, byType := range counts {
		i := parents[id]
		redacted := out[i].Unsigned != nil && out[i].Unsigned.RedactedBecause != nil
		// A redacted event shows no edit; neither is an edit of an edit valid.
		if byType[event.RelReplace].Count > 0 && !redacted && !isReplacement(evs[i]) {
			editParents = append(editParents, id)
		}
		if byType[event.RelReference].Count > 0 {
			refParents = append(refParents, id)
		}
		if byType[event.RelThread].Count > 0 {
			threadRoots = append(threadRoots, id)
		}
	}

	// Every child that may be shown, read and checked for visibility at once.
	var wanted []storage.EventNID
	parentOf := map[storage.EventNID]string{}
	want := func(nid storage.EventNID, parent string) {
		if _, ok := parentOf[nid]; !ok {
			parentOf[nid] = parent
			wanted = append(wanted, nid)
		}
	}
	edits, err := storage.RelationsOfType(ctx, a.db, editParents, event.RelReplace)
	if err != nil {
		return mxhttp.Internal(err)
	}
	editsOf := map[string][]storage.Relation{}
	for _, rel := range edits {
		p := evs[parents[rel.ParentID]]
		// The same sender and type as the original; the rest is checked on the event.
		if rel.Sender == p.Sender() && rel.ChildType == p.Type() {
			editsOf[rel.ParentID] = append(editsOf[rel.ParentID], rel)
			want(rel.ChildNID, rel.ParentID)
		}
	}
	refs, err := storage.RelationsOfType(ctx, a.db, refParents, event.RelReference)
	if err != nil {
		return mxhttp.Internal(err)
	}
	// Oldest first, as the timeline reads.
	slices.SortStableFunc(refs, func(x, y storage.Relation) int {
		if x.Depth != y.Depth {
			return cmp.Compare(x.Depth, y.Depth)
		}
		return cmp.Compare(x.StreamPos, y.StreamPos)
	})
	refsOf := map[string][]storage.Relation{}
	for _, rel := range refs {
		refsOf[rel.ParentID] = append(refsOf[rel.ParentID], rel)
	}
	for p, rs := range refsOf {
		if len(rs) > maxBundledReferences {
			refsOf[p] = rs[len(rs)-maxBundledReferences:]
		}
		for _, rel := range refsOf[p] {
			want(rel.ChildNID, p)
		}
	}
	latest, err := storage.LatestThreadReplies(ctx, a.db, threadRoots)
	if err != nil {
		return mxhttp.Internal(err)
	}
	for root, nid := range latest {
		want(nid, root)
	}

	children, err := a.visibleChildren(ctx, who, wanted, parentOf, evs, parents)
	if err != nil {
		return err
	}
	bundles := map[string]*BundledRelations{}
	bundleOf := func(id string) *BundledRelations {
		if bundles[id] == nil {
			bundles[id] = &BundledRelations{}
		}
		return bundles[id]
	}
	now := a.now()
	for parent, rels := range editsOf {
		for _, rel := range rels {
			ev := children[rel.ChildNID]
			if ev != nil && validReplacement(ev) {
				ce := ToClientEvent(ev, format, now, ClientEventOptions{})
				bundleOf(parent).Replace = &ce
				break
			}
		}
	}
	for parent, rels := range refsOf {
		var chunk []ReferencedBy
		for _, rel := range rels {
			if children[rel.ChildNID] != nil {
				chunk = append(chunk, ReferencedBy{EventID: rel.ChildID})
			}
		}
		if len(chunk) > 0 {
			bundleOf(parent).Reference = &ReferenceAggregate{Chunk: chunk}
		}
	}
	// The latest events of threads, formatted as the events themselves are, with their own
	// aggregations (an edit of the latest reply, above all).
	var latestEvs []*event.Event
	var latestRoots []string
	for root, nid := range latest {
		if ev := children[nid]; ev != nil {
			latestEvs = append(latestEvs, ev)
			latestRoots = append(latestRoots, root)
		}
	}
	if len(latestEvs) > 0 {
		formatted, err := a.formatChildren(ctx, who, latestEvs, format)
		if err != nil {
			return err
		}
		for i, root := range latestRoots {
			c := counts[root][event.RelThread]
			bundleOf(root).Thread = &ThreadAggregation{
				LatestEvent:             formatted[i],
				Count:                   c.Count,
				CurrentUserParticipated: c.BySender > 0 || evs[parents[root]].Sender() == who.UserID,
			}
		}
	}
	for id, b := range bundles {
		i := parents[id]
		if out[i].Unsigned == nil {
			out[i].Unsigned = &ClientUnsigned{}
		}
		out[i].Unsigned.Relations = b
	}
	return nil
}

// visibleChildren reads the child events nids (each of the parent parentOf names) and keeps
// those the requester may see, keyed by short id.
func (a *API) visibleChildren(ctx context.Context, who Requester, nids []storage.EventNID, parentOf map[storage.EventNID]string,
	evs []*event.Event, parents map[string]int) (map[storage.EventNID]*event.Event, error) {
	out := map[storage.EventNID]*event.Event{}
	if len(nids) == 0 {
		return out, nil
	}
	recs, err := storage.EventsByNID(ctx, a.db, nids)
	if err != nil {
		return nil, mxhttp.Internal(err)
	}
	byID := map[string]storage.EventNID{}
	var parsed []*event.Event
	for _, rec := range recs {
		if rec.JSON == nil || rec.Rejected || rec.StreamPos == 0 {
			continue
		}
		v := evs[parents[parentOf[rec.NID]]].Version()
		ev, err := event.Parse(rec.JSON, v)
		if err != nil {
			continue // what cannot be parsed cannot be shown
		}
		byID[ev.ID()] = rec.NID
		parsed = append(parsed, ev)
	}
	visible, err := visibleEvents(ctx, a.cfg.Rooms, who.UserID, parsed)
	if err != nil {
		return nil, roomError(err)
	}
	for _, ev := range visible {
		out[byID[ev.ID()]] = ev
	}
	return out, nil
}

// formatChildren formats the latest events of threads as a timeline event is formatted, with
// their own aggregations but no thread of theirs.
func (a *API) formatChildren(ctx context.Context, who Requester, evs []*event.Event, format EventFormat) ([]ClientEvent, error) {
	txns, err := transactionIDs(ctx, a.db, who, evs)
	if err != nil {
		return nil, mxhttp.Internal(err)
	}
	out := make([]ClientEvent, len(evs))
	now := a.now()
	for i, ev := range evs {
		out[i] = ToClientEvent(ev, format, now, ClientEventOptions{TransactionID: txns[ev.ID()], Membership: membershipAt(ctx, ev.ID())})
	}
	if err := a.bundle(ctx, who, evs, out, format, true); err != nil {
		return nil, err
	}
	return out, nil
}

// isReplacement reports whether ev is itself an edit, which may not be edited.
func isReplacement(ev *event.Event) bool {
	rel, ok := ev.RelatesTo()
	return ok && rel.RelType == event.RelReplace
}

// validReplacement checks what the index cannot of "Validity of replacement events": no state
// key, and an m.new_content object, unless encrypted, where it is in the ciphertext.
func validReplacement(ev *event.Event) bool {
	if ev.IsState() {
		return false
	}
	if ev.Type() == "m.room.encrypted" {
		return true
	}
	var c struct {
		NewContent json.RawMessage `json:"m.new_content"`
	}
	return json.Unmarshal(ev.Content(), &c) == nil && len(c.NewContent) > 0 && c.NewContent[0] == '{'
}
