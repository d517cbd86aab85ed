package export

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"

	"myelin/clientapi"
	"myelin/roomserver/event"
	"myelin/storage"
)

// Rooms: every room the user is or was in, one file each, written as a stream so that a room
// with a long history does not have to fit in memory. Events are in the client format that
// /messages uses (redacted events as redacted, with unsigned.redacted_because; redactions that
// have not taken effect left out), in stream order.

// eventBatch is how many events are read, checked and written at a time.
const eventBatch = 500

// roomIndexJSON is one entry of rooms.json.
type roomIndexJSON struct {
	RoomID           string `json:"room_id"`
	RoomVersion      string `json:"room_version"`
	Membership       string `json:"membership"`
	Forgotten        bool   `json:"forgotten"`
	File             string `json:"file"`
	MembershipEvents int    `json:"membership_events"`
	SentEvents       int    `json:"sent_events"`
	HistoryEvents    *int   `json:"history_events,omitempty"`
	// PrunedEvents counts the user's events whose body retention or a purge already removed:
	// only a stub remains on the server, and nothing of it is exported.
	PrunedEvents int    `json:"pruned_events,omitempty"`
	Error        string `json:"error,omitempty"`
}

func (e *exporter) writeRooms(ctx context.Context) error {
	rooms, err := storage.RoomsOfUserAll(ctx, e.opts.DB, e.userID)
	if err != nil {
		return err
	}
	forgotten, err := storage.ForgottenRooms(ctx, e.opts.DB, e.userID)
	if err != nil {
		return err
	}
	index := make([]roomIndexJSON, 0, len(rooms))
	for i, r := range rooms {
		// Room ids hold characters some file systems refuse (':'), so files are numbered and
		// rooms.json maps them to rooms.
		name := fmt.Sprintf("rooms/%04d.json", i+1)
		pos, isForgotten := forgotten[r.RoomID]
		entry := roomIndexJSON{RoomID: r.RoomID, RoomVersion: r.Version, Membership: r.Membership,
			Forgotten: isForgotten && pos >= r.MembershipPos, File: name}
		if err := e.file(name, "", func(w io.Writer) error { return e.writeRoom(ctx, w, r, &entry) }); err != nil {
			return err
		}
		index = append(index, entry)
	}
	return e.writeJSON("rooms.json", "every room the user is or was in, and the file of each", index)
}

// writeRoom writes one room's file: an object with the room, the user's membership events,
// the events the user sent, and with IncludeRoomHistory the events the user may see.
func (e *exporter) writeRoom(ctx context.Context, w io.Writer, r storage.UserRoom, entry *roomIndexJSON) error {
	bw := bufio.NewWriter(w)
	// The room's fields come one per line, then the event arrays, one event per line.
	bw.WriteString("{")
	for i, kv := range [][2]string{{"room_id", r.RoomID}, {"room_version", r.Version}, {"membership", r.Membership}} {
		val, err := json.Marshal(kv[1])
		if err != nil {
			return err
		}
		if i > 0 {
			bw.WriteString(",")
		}
		fmt.Fprintf(bw, "\n\"%s\": %s", kv[0], val)
	}
	v, verr := event.Version(r.Version)
	if verr != nil {
		// A room of a version this binary cannot read: its events cannot be formatted.
		entry.Error = "unsupported room version: events not exported"
		bw.WriteString(",\n\"error\": ")
		msg, _ := json.Marshal(entry.Error)
		bw.Write(msg)
		bw.WriteString("\n}\n")
		return bw.Flush()
	}
	own := func(after int64) ([]storage.EventRecord, error) {
		return storage.UserRoomEvents(ctx, e.opts.DB, r.Room, e.userID, after, eventBatch)
	}
	isOwnMember := func(ev *event.Event) bool { return ev.Type() == "m.room.member" && ev.StateKeyEquals(e.userID) }
	bw.WriteString(",\n\"membership_events\": ")
	// Pruned events are counted once, in the pass over the events the user sent.
	var err error
	entry.MembershipEvents, _, err = e.writeEvents(ctx, bw, v, own, isOwnMember, false)
	if err != nil {
		return err
	}
	var pruned int
	bw.WriteString(",\n\"sent_events\": ")
	entry.SentEvents, pruned, err = e.writeEvents(ctx, bw, v, own, func(ev *event.Event) bool { return !isOwnMember(ev) }, false)
	if err != nil {
		return err
	}
	entry.PrunedEvents = pruned
	if e.opts.IncludeRoomHistory {
		all := func(after int64) ([]storage.EventRecord, error) {
			return storage.RoomEventsByStream(ctx, e.opts.DB, r.Room, after, math.MaxInt64, eventBatch, false)
		}
		bw.WriteString(",\n\"history\": ")
		n, _, err := e.writeEvents(ctx, bw, v, all, nil, true)
		if err != nil {
			return err
		}
		entry.HistoryEvents = &n
	}
	bw.WriteString("\n}\n")
	return bw.Flush()
}

// writeEvents writes a JSON array of the events read batch by batch from read (in stream order,
// after a cursor), keeping those keep accepts (all when nil) and, when checkVisibility is set,
// those the user may see by history visibility. It returns how many it wrote and how many bodies
// it found pruned.
func (e *exporter) writeEvents(ctx context.Context, w *bufio.Writer, v event.RoomVersion,
	read func(after int64) ([]storage.EventRecord, error), keep func(*event.Event) bool, checkVisibility bool) (n, pruned int, err error) {
	w.WriteString("[")
	after := int64(storage.FirstStreamPosition)
	for {
		recs, err := read(after)
		if err != nil {
			return n, pruned, fmt.Errorf("reading events: %w", err)
		}
		if len(recs) == 0 {
			break
		}
		after = recs[len(recs)-1].StreamPos
		evs := make([]*event.Event, 0, len(recs))
		for _, rec := range recs {
			if rec.JSON == nil {
				if keep == nil || rec.Sender == e.userID {
					pruned++
				}
				continue
			}
			ev, err := event.Parse(rec.JSON, v)
			if err != nil {
				return n, pruned, fmt.Errorf("parsing stored event %s: %w", rec.EventID, err)
			}
			if keep == nil || keep(ev) {
				evs = append(evs, ev)
			}
		}
		if checkVisibility {
			if evs, err = e.opts.Rooms.VisibleEvents(ctx, e.userID, evs); err != nil {
				return n, pruned, fmt.Errorf("checking history visibility: %w", err)
			}
		}
		ces, err := e.clientEvents(ctx, evs)
		if err != nil {
			return n, pruned, err
		}
		for _, ce := range ces {
			raw, err := json.Marshal(ce)
			if err != nil {
				return n, pruned, err
			}
			if n > 0 {
				w.WriteString(",")
			}
			w.WriteString("\n  ")
			w.Write(raw)
			n++
		}
		if len(recs) < eventBatch {
			break
		}
	}
	if n > 0 {
		w.WriteString("\n")
	}
	w.WriteString("]")
	return n, pruned, nil
}

// clientEvents formats events as /messages does: redactions that have not taken effect are
// left out, and redacted events carry the redaction that redacted them.
func (e *exporter) clientEvents(ctx context.Context, evs []*event.Event) ([]clientapi.ClientEvent, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	var redactionIDs []string
	ids := make([]string, len(evs))
	for i, ev := range evs {
		ids[i] = ev.ID()
		if ev.Type() == "m.room.redaction" {
			redactionIDs = append(redactionIDs, ev.ID())
		}
	}
	var unapplied map[string]bool
	if len(redactionIDs) > 0 {
		var err error
		if unapplied, err = e.opts.Rooms.UnappliedRedactions(ctx, redactionIDs); err != nil {
			return nil, fmt.Errorf("reading redactions: %w", err)
		}
	}
	by, err := e.opts.Rooms.RedactionsFor(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("reading redactions: %w", err)
	}
	out := make([]clientapi.ClientEvent, 0, len(evs))
	for _, ev := range evs {
		if unapplied[ev.ID()] {
			continue
		}
		out = append(out, clientapi.ToClientEvent(ev, clientapi.FormatClient, e.now, clientapi.ClientEventOptions{RedactedBy: by[ev.ID()]}))
	}
	return out, nil
}

type inviteJSON struct {
	RoomID      string                `json:"room_id"`
	RoomVersion string                `json:"room_version"`
	Event       clientapi.ClientEvent `json:"event"`
	InviteState json.RawMessage       `json:"invite_state,omitempty"`
}

// writeInvites writes the pending invites to rooms of other servers that this server is not in
// (invites to rooms it is in are membership events of rooms.json).
func (e *exporter) writeInvites(ctx context.Context) error {
	invs, err := storage.RemoteInvites(ctx, e.opts.DB, e.userID, storage.FirstStreamPosition, 0)
	if err != nil {
		return err
	}
	out := make([]inviteJSON, 0, len(invs))
	for _, inv := range invs {
		v, err := event.Version(inv.RoomVersion)
		if err != nil {
			continue
		}
		ev, err := event.Parse(inv.EventJSON, v)
		if err != nil {
			return fmt.Errorf("export: parsing the invite to %s: %w", inv.RoomID, err)
		}
		j := inviteJSON{RoomID: inv.RoomID, RoomVersion: inv.RoomVersion,
			Event: clientapi.ToClientEvent(ev, clientapi.FormatClient, e.now, clientapi.ClientEventOptions{})}
		if json.Valid(inv.InviteState) {
			j.InviteState = inv.InviteState
		}
		out = append(out, j)
	}
	return e.writeJSON("invites.json", "pending invites to rooms on other servers that this server is not in", out)
}
