package pusher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"myelin/push"
	"myelin/roomserver/auth"
	"myelin/roomserver/event"
	"myelin/storage"
)

// maxCachedRooms bounds the room cache; past it the cache starts over.
const maxCachedRooms = 1000

// roomContextTTL bounds how long a cached room context is used: state can also change without
// a state event of the room's timeline (state resolution after a fork is merged).
const roomContextTTL = 5 * time.Minute

// maxThreadHops is how far a relation is followed to find an event's thread, as the spec
// recommends.
const maxThreadHops = 3

// roomContext is what evaluating an event needs to know of its room, read from the current
// state. The worker runs just behind the timeline, so the current state is the state of the
// events it evaluates but for the rare state change in between; a state event in the room
// drops the cached context.
type roomContext struct {
	loaded  time.Time
	nid     storage.RoomNID
	roomID  string
	version event.RoomVersion
	// local are the local joined members with the position of their latest join; names their
	// display names in the room.
	local       map[string]int64
	names       map[string]string
	memberCount int
	power       auth.PowerLevels
	hasPower    bool
	notifLevels map[string]int64
	// Room name and canonical alias, for push gateways when content is included.
	name, alias string
}

// batch is what evaluating a batch of events found.
type batch struct {
	// next is the position after the batch: that of its last event.
	next int64
	acts []storage.PushAction
	// reads are the own events of local users in it.
	reads []ownRead
	// redacts are the events that its redactions redact (whether or not the redactions were
	// allowed to); redacted those of them that were redacted (findRedacted, pending.go).
	redacts, redacted []string
	// ignored caches the users' m.ignored_user_list for the batch.
	ignored ignoreLists
}

// processBatch evaluates the events after pos and returns the new position. Their actions join
// the pending ones, which are written with the position (flushed) when asked or flushDue says
// so; the batch's own reads, and the deletions its redactions need, are written at once
// (commit, pending.go). A batch with nothing to write moves the position in memory only. With
// skipFailing, an event whose evaluation fails is logged and skipped.
func (w *Worker) processBatch(ctx context.Context, pos int64, asked, skipFailing bool) (int64, error) {
	items, err := w.next(ctx, pos)
	if err != nil {
		return pos, err
	}
	b := &batch{next: pos, ignored: ignoreLists{}}
	for _, it := range items {
		err := w.evaluate(ctx, it, b)
		if err != nil && skipFailing && ctx.Err() == nil {
			w.log.WithError(err).WithField("event_id", it.id()).Error("skipping an event whose push rules cannot be evaluated")
			continue
		}
		if err != nil {
			return pos, fmt.Errorf("event %s: %w", it.id(), err)
		}
	}
	if len(items) > 0 {
		b.next = items[len(items)-1].pos
	}
	if err := w.findRedacted(ctx, b); err != nil {
		return pos, err
	}
	now := asked || w.forPushers(b)
	if !now && w.flushDue(b) {
		// A flush that is only due (time, size) follows the batch's publication rather than
		// preceding it: a /sync waiting for these events' counts (WaitFor) does not wait for
		// the write. Should the write fail, what it held stays pending for the next.
		if err := w.commit(ctx, b, false); err != nil {
			return pos, err
		}
		if err := w.commit(ctx, &batch{next: b.next}, true); err != nil && ctx.Err() == nil {
			w.log.WithError(err).Error("could not write pending notifications")
		}
		return b.next, nil
	}
	if err := w.commit(ctx, b, now); err != nil {
		return pos, err
	}
	return b.next, nil
}

// ownRead is a local user's own event: it marks their thread read up to it.
type ownRead struct {
	userID, roomID, threadID string
	pos                      int64
}

// evaluate decides, for each local member of the event's room other than its sender, whether
// the event notifies them; and, for a local sender, that they have read up to it. It adds what
// it found to b.
func (w *Worker) evaluate(ctx context.Context, it feedItem, b *batch) error {
	if it.ev == nil && (it.rec.Rejected || it.rec.SoftFailed || it.rec.JSON == nil) {
		return nil // announced events are all on the timeline
	}
	if it.ev != nil && it.ev.StateKey() != nil || it.ev == nil && it.rec.StateKey != nil {
		delete(w.rooms, it.room) // who is in the room, their names or power may change here
	}
	rc, err := w.roomContext(ctx, it.room)
	if err != nil {
		return err
	}
	ev := it.ev
	if ev == nil {
		if ev, err = event.Parse(it.rec.JSON, rc.version); err != nil {
			return fmt.Errorf("parsing: %w", err)
		}
	}
	var (
		read     *ownRead
		threadID string
	)
	if w.isLocal(ev.Sender()) {
		if threadID, err = w.threadOf(ctx, ev); err != nil {
			return err
		}
		read = &ownRead{userID: ev.Sender(), roomID: rc.roomID, threadID: threadID, pos: it.pos}
	}
	acts, err := w.actions(ctx, rc, ev, it.pos, threadID, b.ignored)
	if err != nil {
		return err
	}
	b.acts = append(b.acts, acts...)
	if read != nil {
		b.reads = append(b.reads, *read)
	}
	if ev.Type() == auth.TypeRedaction && ev.Redacts() != "" {
		b.redacts = append(b.redacts, ev.Redacts())
	}
	return nil
}

// actions evaluates the push rules of the event's recipients; threadID is the event's thread
// when already known.
func (w *Worker) actions(ctx context.Context, rc *roomContext, ev *event.Event, pos int64, threadID string, ignored ignoreLists) ([]storage.PushAction, error) {
	recipients := w.recipients(rc, ev, pos)
	if len(recipients) == 0 {
		return nil, nil
	}
	if err := w.loadIgnoreLists(ctx, ignored, recipients); err != nil {
		return nil, err
	}
	clientJSON, err := clientEventJSON(ev)
	if err != nil {
		return nil, err
	}
	pev, err := push.NewEvent(clientJSON)
	if err != nil {
		return nil, err
	}
	var senderLevel int64
	if rc.hasPower {
		senderLevel = rc.power.UserLevel(ev.Sender())
	}
	var acts []storage.PushAction
	now := w.cfg.Now().UnixMilli()
	for _, user := range recipients {
		if ignored[user][ev.Sender()] {
			continue
		}
		rules, err := w.cfg.Rules.Rules(ctx, user)
		if err != nil {
			return nil, fmt.Errorf("push rules of %s: %w", user, err)
		}
		out := rules.Evaluate(pev, push.Room{
			UserID: user, DisplayName: rc.names[user], MemberCount: rc.memberCount,
			SenderPowerLevel: senderLevel, NotificationPowerLevels: rc.notifLevels,
		})
		if !out.Notify && !out.Highlight {
			continue
		}
		if threadID == "" {
			if threadID, err = w.threadOf(ctx, ev); err != nil {
				return nil, err
			}
		}
		actions := out.ActionsJSON
		if actions == nil {
			if actions, err = json.Marshal(out.Actions); err != nil {
				return nil, err
			}
		}
		acts = append(acts, storage.PushAction{
			UserID: user, RoomNID: rc.nid, RoomID: rc.roomID, EventID: ev.ID(), StreamPos: pos, ThreadID: threadID,
			Notify: out.Notify, Highlight: out.Highlight, Actions: actions, TS: now,
		})
	}
	return acts, nil
}

// recipients are the local users whose rules an event is evaluated against: the members
// joined before it, other than its sender, and the local target of an invite (whom the default
// rule .m.rule.invite_for_me notifies though they are not in the room).
func (w *Worker) recipients(rc *roomContext, ev *event.Event, pos int64) []string {
	var out []string
	for user, joinPos := range rc.local {
		if user != ev.Sender() && joinPos < pos {
			out = append(out, user)
		}
	}
	if ev.Type() == auth.TypeMember && ev.StateKey() != nil {
		target := *ev.StateKey()
		if m, err := ev.Membership(); err == nil && m == "invite" && target != ev.Sender() && w.isLocal(target) {
			if _, joined := rc.local[target]; !joined {
				out = append(out, target)
			}
		}
	}
	return out
}

func (w *Worker) isLocal(userID string) bool {
	return strings.HasSuffix(userID, ":"+w.cfg.ServerName) && strings.HasPrefix(userID, "@")
}

// ignoreLists are the m.ignored_user_list of the users a batch was evaluated for: user -> the
// users they ignore (nil: none), whose events never notify them. A batch takes each user's
// list once (from storage's cache of committed lists, or the database); lists changed during a
// batch apply from the next, as they would if the batch had been evaluated a moment earlier.
type ignoreLists map[string]map[string]bool

// loadIgnoreLists gives lists the lists of those of users it lacks.
func (w *Worker) loadIgnoreLists(ctx context.Context, lists ignoreLists, users []string) error {
	var missing []string
	for _, u := range users {
		if _, ok := lists[u]; !ok {
			missing = append(missing, u)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	raw, err := w.cfg.DB.IgnoredUserListContents(ctx, missing)
	if err != nil {
		return err
	}
	for _, u := range missing {
		var (
			content struct {
				Ignored map[string]json.RawMessage `json:"ignored_users"`
			}
			ignored map[string]bool
		)
		if js := raw[u]; js != nil && json.Unmarshal(js, &content) == nil && len(content.Ignored) > 0 {
			ignored = make(map[string]bool, len(content.Ignored))
			for id := range content.Ignored {
				ignored[id] = true
			}
		}
		lists[u] = ignored
	}
	return nil
}

// roomContext returns the cached context of a room, reading it when missing.
func (w *Worker) roomContext(ctx context.Context, nid storage.RoomNID) (*roomContext, error) {
	if rc, ok := w.rooms[nid]; ok && w.cfg.Now().Sub(rc.loaded) < roomContextTTL {
		return rc, nil
	}
	room, err := storage.GetRoomByNID(ctx, w.cfg.DB, nid)
	if err != nil {
		return nil, err
	}
	v, err := event.Version(room.Version)
	if err != nil {
		return nil, err
	}
	rc := &roomContext{loaded: w.cfg.Now(), nid: nid, roomID: room.ID, version: v, local: map[string]int64{}, names: map[string]string{}}
	joined, err := storage.JoinedMembersWithJoinPos(ctx, w.cfg.DB, nid)
	if err != nil {
		return nil, err
	}
	rc.memberCount = len(joined)
	for user, pos := range joined {
		if !w.isLocal(user) {
			continue
		}
		rc.local[user] = pos
		if content, ok, err := w.stateContent(ctx, nid, auth.TypeMember, user); err != nil {
			return nil, err
		} else if ok {
			var m struct {
				DisplayName string `json:"displayname"`
			}
			if json.Unmarshal(content, &m) == nil {
				rc.names[user] = m.DisplayName
			}
		}
	}
	if err := w.readPower(ctx, nid, rc); err != nil {
		return nil, err
	}
	if content, ok, err := w.stateContent(ctx, nid, "m.room.name", ""); err != nil {
		return nil, err
	} else if ok {
		var c struct {
			Name string `json:"name"`
		}
		if json.Unmarshal(content, &c) == nil {
			rc.name = c.Name
		}
	}
	if content, ok, err := w.stateContent(ctx, nid, "m.room.canonical_alias", ""); err != nil {
		return nil, err
	} else if ok {
		var c struct {
			Alias string `json:"alias"`
		}
		if json.Unmarshal(content, &c) == nil {
			rc.alias = c.Alias
		}
	}
	if len(w.rooms) >= maxCachedRooms {
		clear(w.rooms)
	}
	w.rooms[nid] = rc
	return rc, nil
}

// readPower reads the room's power levels: the sender's level and the "notifications"
// levels that the sender_notification_permission condition compares it with.
func (w *Worker) readPower(ctx context.Context, nid storage.RoomNID, rc *roomContext) error {
	rc.notifLevels = map[string]int64{"room": 50}
	create, err := w.stateEvent(ctx, nid, rc.version, auth.TypeCreate)
	if err != nil || create == nil {
		return err
	}
	pl, err := w.stateEvent(ctx, nid, rc.version, auth.TypePowerLevels)
	if err != nil {
		return err
	}
	if p, err := auth.NewPowerLevels(pl, create); err == nil {
		rc.power, rc.hasPower = p, true
	}
	if pl != nil {
		var c struct {
			Notifications map[string]json.RawMessage `json:"notifications"`
		}
		if json.Unmarshal(pl.Content(), &c) == nil {
			for k, raw := range c.Notifications {
				if n, ok := level(raw); ok {
					rc.notifLevels[k] = n
				}
			}
		}
	}
	return nil
}

// level reads a power level: an integer, or (in old room versions) a string holding one.
func level(raw json.RawMessage) (int64, bool) {
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		if i, err := n.Int64(); err == nil {
			return i, true
		}
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if i, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64); err == nil {
			return i, true
		}
	}
	return 0, false
}

func (w *Worker) stateEvent(ctx context.Context, nid storage.RoomNID, v event.RoomVersion, typ string) (*event.Event, error) {
	rec, err := storage.CurrentStateEvent(ctx, w.cfg.DB, nid, typ, "")
	if errors.Is(err, storage.ErrNotFound) || err == nil && rec.JSON == nil {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return event.Parse(rec.JSON, v)
}

// stateContent returns the content of a current state event.
func (w *Worker) stateContent(ctx context.Context, nid storage.RoomNID, typ, stateKey string) (json.RawMessage, bool, error) {
	rec, err := storage.CurrentStateEvent(ctx, w.cfg.DB, nid, typ, stateKey)
	if errors.Is(err, storage.ErrNotFound) || err == nil && rec.JSON == nil {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	var e struct {
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(rec.JSON, &e); err != nil {
		return nil, false, fmt.Errorf("stored event %s: %w", rec.EventID, err)
	}
	return e.Content, true, nil
}

// threadOf is the thread of an event: the root of the m.thread relation found within
// maxThreadHops relations, else the main timeline. A thread root, and what relates to it by
// another relation, are in the main timeline.
func (w *Worker) threadOf(ctx context.Context, ev *event.Event) (string, error) {
	content, id := ev.Content(), ev.ID()
	for range maxThreadHops {
		rel, ok := event.RelationOf(content, id)
		if !ok {
			return storage.ThreadMain, nil
		}
		if rel.RelType == event.RelThread {
			return rel.EventID, nil
		}
		parent, err := storage.EventByID(ctx, w.cfg.DB, rel.EventID)
		if errors.Is(err, storage.ErrNotFound) || err == nil && parent.JSON == nil {
			return storage.ThreadMain, nil
		}
		if err != nil {
			return "", err
		}
		var e struct {
			Content json.RawMessage `json:"content"`
		}
		if json.Unmarshal(parent.JSON, &e) != nil {
			return storage.ThreadMain, nil
		}
		content, id = e.Content, rel.EventID
	}
	return storage.ThreadMain, nil
}

// clientEventJSON is the event as push rules see it: the client format's fields. An
// encrypted event is evaluated as it is, so rules see only its envelope.
func clientEventJSON(ev *event.Event) ([]byte, error) {
	content := ev.Content()
	if len(content) == 0 {
		content = json.RawMessage("{}")
	}
	return json.Marshal(struct {
		Type           string          `json:"type"`
		Sender         string          `json:"sender"`
		RoomID         string          `json:"room_id"`
		EventID        string          `json:"event_id"`
		OriginServerTS int64           `json:"origin_server_ts"`
		StateKey       *string         `json:"state_key,omitempty"`
		Content        json.RawMessage `json:"content"`
	}{ev.Type(), ev.Sender(), ev.RoomID(), ev.ID(), ev.OriginServerTS(), ev.StateKey(), content})
}
