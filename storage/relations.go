package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// Relations between events (m.relates_to): the index behind /relations, /threads and the
// bundled aggregations. Rows are written and deleted by the room server inside the
// transaction that stores an event or prunes it (roomserver/index.go); storage only knows the
// columns. Only children on the timeline are ever read back: an outlier (stream_pos 0) is
// served to no client; backfilled events have negative positions (backfill.go) and count.

// Relation types the storage layer treats specially: threads are summarised in thread_roots.
const relThread = "m.thread"

// Relation is one child event's link to its parent.
type Relation struct {
	ChildNID       EventNID
	ChildID        string
	Room           RoomNID
	ParentID       string
	RelType        string
	ChildType      string
	Sender         string
	Depth          int64
	StreamPos      int64 // 0 for an outlier
	OriginServerTS int64
	// Key is the key of an m.annotation, "" otherwise.
	Key string
}

const relationColumns = `child_nid, child_id, room_nid, parent_id, rel_type, child_type, sender, depth, stream_pos, origin_server_ts, aggregation_key`

// IndexRelation records rel. An event is indexed once; indexing it again changes nothing.
// A thread reply on the timeline also moves its thread's latest activity forward.
func (tx *Tx) IndexRelation(ctx context.Context, rel Relation) error {
	key := sql.NullString{String: rel.Key, Valid: rel.Key != ""}
	_, err := tx.Exec(ctx, `INSERT INTO event_relations (`+relationColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (child_nid) DO NOTHING`,
		rel.ChildNID, rel.ChildID, rel.Room, rel.ParentID, rel.RelType, rel.ChildType, rel.Sender,
		rel.Depth, rel.StreamPos, rel.OriginServerTS, key)
	if err != nil {
		return fmt.Errorf("storage: indexing the relation of %s: %w", rel.ChildID, err)
	}
	if rel.RelType != relThread || rel.StreamPos == 0 {
		return nil
	}
	_, err = tx.Exec(ctx, `INSERT INTO thread_roots (room_nid, root_id, latest_child_nid, latest_depth, latest_stream_pos)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (room_nid, root_id) DO UPDATE SET latest_child_nid = excluded.latest_child_nid,
			latest_depth = excluded.latest_depth, latest_stream_pos = excluded.latest_stream_pos
		WHERE (excluded.latest_depth, excluded.latest_stream_pos) > (thread_roots.latest_depth, thread_roots.latest_stream_pos)`,
		rel.Room, rel.ParentID, rel.ChildNID, rel.Depth, rel.StreamPos)
	if err != nil {
		return fmt.Errorf("storage: updating the thread of %s: %w", rel.ChildID, err)
	}
	return nil
}

// UnindexRelation forgets the relation of the child event, if it had one: its content (and so
// its m.relates_to) is gone. A thread whose latest reply it was falls back to the reply
// before, and a thread with no reply left is no thread.
func (tx *Tx) UnindexRelation(ctx context.Context, child EventNID) error {
	var room RoomNID
	var parent, relType string
	err := tx.QueryRow(ctx, `SELECT room_nid, parent_id, rel_type FROM event_relations WHERE child_nid = $1`, child).
		Scan(&room, &parent, &relType)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("storage: reading the relation of event %d: %w", child, err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM event_relations WHERE child_nid = $1`, child); err != nil {
		return fmt.Errorf("storage: deleting the relation of event %d: %w", child, err)
	}
	if relType != relThread {
		return nil
	}
	var latest Relation
	err = tx.QueryRow(ctx, `SELECT child_nid, depth, stream_pos FROM event_relations
		WHERE parent_id = $1 AND rel_type = $2 AND room_nid = $3 AND stream_pos <> 0
		ORDER BY depth DESC, stream_pos DESC LIMIT 1`, parent, relThread, room).
		Scan(&latest.ChildNID, &latest.Depth, &latest.StreamPos)
	if errors.Is(err, ErrNotFound) {
		_, err = tx.Exec(ctx, `DELETE FROM thread_roots WHERE room_nid = $1 AND root_id = $2`, room, parent)
	} else if err == nil {
		_, err = tx.Exec(ctx, `UPDATE thread_roots SET latest_child_nid = $1, latest_depth = $2, latest_stream_pos = $3
			WHERE room_nid = $4 AND root_id = $5`, latest.ChildNID, latest.Depth, latest.StreamPos, room, parent)
	}
	if err != nil {
		return fmt.Errorf("storage: updating the thread %s: %w", parent, err)
	}
	return nil
}

func scanRelations(rows *Rows) ([]Relation, error) {
	defer rows.Close()
	var out []Relation
	for rows.Next() {
		var rel Relation
		var key sql.NullString
		if err := rows.Scan(&rel.ChildNID, &rel.ChildID, &rel.Room, &rel.ParentID, &rel.RelType, &rel.ChildType,
			&rel.Sender, &rel.Depth, &rel.StreamPos, &rel.OriginServerTS, &key); err != nil {
			return nil, err
		}
		rel.Key = key.String
		out = append(out, rel)
	}
	return out, rows.Err()
}

// RelationQuery selects the children of one parent for /relations.
type RelationQuery struct {
	Room   RoomNID
	Parent string
	// RelType and ChildType restrict the children when not empty; with recursion they restrict
	// every level, so a child reached only through a non-matching one is left out, as the spec
	// says.
	RelType, ChildType string
	// Depth is how many levels of children to follow: 1 for direct children only.
	Depth int
	// From and To bound the page: children after From and not after To, in topological order.
	From, To TopoPos
	// MaxStream leaves out children past this stream position (what a reader who left may see).
	MaxStream int64
	Limit     int
	Backwards bool // newest first
}

// RelationPage returns one page of the children q selects, in topological order (newest first
// when backwards).
func RelationPage(ctx context.Context, r Reader, q RelationQuery) ([]Relation, error) {
	args := []any{q.Room, q.Parent, q.MaxStream}
	filter := func(alias string) string {
		var b strings.Builder
		if q.RelType != "" {
			args = append(args, q.RelType)
			fmt.Fprintf(&b, ` AND %srel_type = $%d`, alias, len(args))
		}
		if q.ChildType != "" {
			args = append(args, q.ChildType)
			fmt.Fprintf(&b, ` AND %schild_type = $%d`, alias, len(args))
		}
		return b.String()
	}
	base := filter("")
	var source string
	if q.Depth <= 1 {
		source = `SELECT ` + relationColumns + ` FROM event_relations
			WHERE room_nid = $1 AND parent_id = $2 AND stream_pos <> 0 AND stream_pos <= $3` + base
	} else {
		rec := filter("r.")
		args = append(args, q.Depth)
		// UNION stops at rows already reached; the level bound stops a cycle of relations.
		source = `WITH RECURSIVE tree(child_nid, child_id, lvl) AS (
				SELECT child_nid, child_id, 1 FROM event_relations
				WHERE room_nid = $1 AND parent_id = $2 AND stream_pos <> 0 AND stream_pos <= $3` + base + `
				UNION
				SELECT r.child_nid, r.child_id, tree.lvl + 1 FROM event_relations r JOIN tree ON r.parent_id = tree.child_id
				WHERE tree.lvl < $` + fmt.Sprint(len(args)) + ` AND r.room_nid = $1 AND r.stream_pos <> 0 AND r.stream_pos <= $3` + rec + `
			)
			SELECT ` + relationColumns + ` FROM event_relations WHERE child_nid IN (SELECT child_nid FROM tree)`
	}
	after, a1 := topoAfter(q.From, len(args)+1)
	args = append(args, a1...)
	notAfter, a2 := topoAfter(q.To, len(args)+1)
	args = append(args, a2...)
	args = append(args, q.Limit)
	order := "ASC"
	if q.Backwards {
		order = "DESC"
	}
	query := `SELECT ` + relationColumns + ` FROM (` + source + `) page
		WHERE ` + after + ` AND NOT (` + notAfter + `)
		ORDER BY depth ` + order + `, stream_pos ` + order + ` LIMIT $` + fmt.Sprint(len(args))
	rows, err := r.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("storage: reading the relations of %s: %w", q.Parent, err)
	}
	return scanRelations(rows)
}

// RelationCount is how many children of one rel_type point at a parent, and how many of them
// a given user sent.
type RelationCount struct {
	Count, BySender int64
}

// CountRelations counts, for each of parents, its timeline children of each of relTypes that
// are in the parent's own room (children claiming a parent in another room are ignored, as
// the spec says), with how many of them sender sent. Parents without children are absent.
func CountRelations(ctx context.Context, r Reader, parents, relTypes []string, sender string) (map[string]map[string]RelationCount, error) {
	out := map[string]map[string]RelationCount{}
	if len(relTypes) == 0 {
		return out, nil
	}
	fixed := append([]any{sender}, anys(relTypes)...)
	err := eachRowIn(ctx, r, func(in string) string {
		return `SELECT r.parent_id, r.rel_type, COUNT(*), SUM(CASE WHEN r.sender = $1 THEN 1 ELSE 0 END)
			FROM event_relations r JOIN events p ON p.event_id = r.parent_id AND p.room_nid = r.room_nid
			WHERE r.rel_type IN (` + placeholders(2, len(relTypes)) + `) AND r.parent_id IN (` + in + `)
				AND r.stream_pos <> 0
			GROUP BY r.parent_id, r.rel_type`
	}, fixed, parents, func(scan func(...any) error) error {
		var parent, relType string
		var c RelationCount
		if err := scan(&parent, &relType, &c.Count, &c.BySender); err != nil {
			return err
		}
		if out[parent] == nil {
			out[parent] = map[string]RelationCount{}
		}
		out[parent][relType] = c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: counting relations: %w", err)
	}
	return out, nil
}

// RelationsOfType returns the timeline children of relType of each of parents that are in the
// parent's room, newest first by origin_server_ts then event id (the order the spec gives
// edits).
func RelationsOfType(ctx context.Context, r Reader, parents []string, relType string) ([]Relation, error) {
	var out []Relation
	for chunk := range chunks(parents, maxInArgs) {
		rows, err := r.Query(ctx, `SELECT `+prefixed("r.", relationColumns)+`
			FROM event_relations r JOIN events p ON p.event_id = r.parent_id AND p.room_nid = r.room_nid
			WHERE r.rel_type = $1 AND r.parent_id IN (`+placeholders(2, len(chunk))+`) AND r.stream_pos <> 0
			ORDER BY r.origin_server_ts DESC, r.child_id DESC`, append([]any{relType}, anys(chunk)...)...)
		if err != nil {
			return nil, fmt.Errorf("storage: reading %s relations: %w", relType, err)
		}
		got, err := scanRelations(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	return out, nil
}

// LatestThreadReplies returns the latest reply (topologically) of each thread among roots,
// for roots that are stored in the room of their thread.
func LatestThreadReplies(ctx context.Context, r Reader, roots []string) (map[string]EventNID, error) {
	out := map[string]EventNID{}
	err := eachRowIn(ctx, r, func(in string) string {
		return `SELECT t.root_id, t.latest_child_nid
			FROM thread_roots t JOIN events p ON p.event_id = t.root_id AND p.room_nid = t.room_nid
			WHERE t.root_id IN (` + in + `)`
	}, nil, roots, func(scan func(...any) error) error {
		var root string
		var nid EventNID
		if err := scan(&root, &nid); err != nil {
			return err
		}
		out[root] = nid
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: reading threads: %w", err)
	}
	return out, nil
}

// ThreadRoot is a thread of a room and the place of its latest reply.
type ThreadRoot struct {
	RootID       string
	LatestDepth  int64
	LatestStream int64
}

// ThreadRoots returns up to limit threads of a room whose latest reply is not after before,
// most recently active first. With participant set, only the threads that user started or
// replied to.
func ThreadRoots(ctx context.Context, r Reader, room RoomNID, participant string, before TopoPos, limit int) ([]ThreadRoot, error) {
	notAfter, args := topoAfterCols(before, 3, "latest_depth", "latest_stream_pos")
	args = append([]any{room, limit}, args...)
	where := ``
	if participant != "" {
		args = append(args, participant, relThread)
		n := len(args)
		where = fmt.Sprintf(` AND (EXISTS (SELECT 1 FROM events e WHERE e.event_id = t.root_id AND e.room_nid = t.room_nid AND e.sender = $%d)
			OR EXISTS (SELECT 1 FROM event_relations r WHERE r.parent_id = t.root_id AND r.rel_type = $%d
				AND r.room_nid = t.room_nid AND r.sender = $%d AND r.stream_pos <> 0))`, n-1, n, n-1)
	}
	rows, err := r.Query(ctx, `SELECT t.root_id, t.latest_depth, t.latest_stream_pos FROM thread_roots t
		WHERE t.room_nid = $1 AND NOT (`+notAfter+`)`+where+`
		ORDER BY t.latest_depth DESC, t.latest_stream_pos DESC LIMIT $2`, args...)
	if err != nil {
		return nil, fmt.Errorf("storage: reading the threads of room %d: %w", room, err)
	}
	defer rows.Close()
	var out []ThreadRoot
	for rows.Next() {
		var t ThreadRoot
		if err := rows.Scan(&t.RootID, &t.LatestDepth, &t.LatestStream); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// ParentsRelatedBy returns which of parents have a timeline child of one of relTypes sent by
// one of senders (a nil list restricts nothing), for the related_by_rel_types and
// related_by_senders fields of a RoomEventFilter.
func ParentsRelatedBy(ctx context.Context, r Reader, parents, relTypes, senders []string) (map[string]bool, error) {
	var cond strings.Builder
	var fixed []any
	if relTypes != nil {
		if len(relTypes) == 0 {
			return map[string]bool{}, nil
		}
		fmt.Fprintf(&cond, ` AND rel_type IN (%s)`, placeholders(1, len(relTypes)))
		fixed = append(fixed, anys(relTypes)...)
	}
	if senders != nil {
		if len(senders) == 0 {
			return map[string]bool{}, nil
		}
		fmt.Fprintf(&cond, ` AND sender IN (%s)`, placeholders(len(fixed)+1, len(senders)))
		fixed = append(fixed, anys(senders)...)
	}
	out := map[string]bool{}
	err := eachRowIn(ctx, r, func(in string) string {
		return `SELECT DISTINCT parent_id FROM event_relations WHERE stream_pos <> 0` + cond.String() + ` AND parent_id IN (` + in + `)`
	}, fixed, parents, func(scan func(...any) error) error {
		var id string
		if err := scan(&id); err != nil {
			return err
		}
		out[id] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: reading related events: %w", err)
	}
	return out, nil
}

// HasAnnotation reports whether sender has already annotated parent with an event of
// childType and this key (an annotation that was redacted no longer counts).
func HasAnnotation(ctx context.Context, r Reader, room RoomNID, parent, childType, sender, key string) (bool, error) {
	var one int
	err := r.QueryRow(ctx, `SELECT 1 FROM event_relations WHERE parent_id = $1 AND rel_type = 'm.annotation'
		AND room_nid = $2 AND child_type = $3 AND sender = $4 AND aggregation_key = $5 LIMIT 1`,
		parent, room, childType, sender, key).Scan(&one)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("storage: reading annotations of %s: %w", parent, err)
	}
	return true, nil
}

// topoAfterCols is topoAfter over other depth and stream columns.
func topoAfterCols(p TopoPos, n int, depthCol, streamCol string) (string, []any) {
	if !p.Topological {
		return streamCol + ` > ` + placeholders(n, 1), []any{p.Stream}
	}
	return `(` + depthCol + `, ` + streamCol + `) > (` + placeholders(n, 2) + `)`, []any{p.Depth, p.Stream}
}
