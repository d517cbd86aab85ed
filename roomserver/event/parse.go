package event

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"myelin/keys"
)

// Limits on the DAG references of one event (server-server API PDU schema). Synapse and
// Dendrite reject events over them, so accepting more would split rooms.
const (
	MaxPrevEvents = 20
	MaxAuthEvents = 10
)

// maxRawEventBytes bounds the input before it is canonicalized: whitespace and escapes can make
// raw JSON larger than its canonical form, but not by this much for any honest server.
const maxRawEventBytes = 4 * MaxEventBytes

// Parse validates a PDU of room version v and returns it as an Event. The event id is taken from
// the PDU (room versions 1 and 2) or computed from the reference hash; in room version 12 the
// room id of an m.room.create event is computed the same way. Signatures and the content hash
// are not checked here: see VerifySignatures and CheckContentHash.
func Parse(raw []byte, v RoomVersion) (*Event, error) {
	if len(raw) > maxRawEventBytes {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(raw))
	}
	parseObject := keys.ParseObject
	if v.StrictCanonicalJSON {
		parseObject = keys.ParseObjectStrict
	}
	o, err := parseObject(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if v.Format == FormatV2 {
		// From room version 3 the id is derived, never carried; a stray event_id (as in the
		// client format) must not leak into the reference hash.
		o = o.Without("event_id")
	}
	o, canonical := o.Encode()
	if len(canonical) > MaxEventBytes {
		return nil, fmt.Errorf("%w: %d bytes as canonical JSON", ErrTooLarge, len(canonical))
	}
	e := &Event{version: v, raw: canonical, obj: o}
	if err := e.fill(); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *Event) fill() error { return e.fillRef(nil) }

// fillRef is fill with the event's reference hash when the caller has it already (nil if not).
func (e *Event) fillRef(ref *[sha256.Size]byte) error {
	o, v := e.obj, e.version
	var err error
	if e.typ, err = idField(o, "type", true); err != nil {
		return err
	}
	if e.sender, err = idField(o, "sender", true); err != nil {
		return err
	}
	sender, err := ParseUserID(e.sender)
	if err != nil {
		return fmt.Errorf("%w: sender: %w", ErrMalformed, err)
	}
	e.senderDomain = sender.Domain()
	if _, ok := o.Get("state_key"); ok {
		s, err := idField(o, "state_key", true)
		if err != nil {
			return err
		}
		e.stateKey = &s
	}
	if e.originServerTS, err = intField(o, "origin_server_ts"); err != nil {
		return err
	}
	if e.depth, err = intField(o, "depth"); err != nil {
		return err
	}
	for _, name := range []string{"content", "hashes", "signatures"} {
		val, ok := o.Get(name)
		if !ok {
			return fmt.Errorf("%w: no %s", ErrMalformed, name)
		}
		if val[0] != '{' {
			return fmt.Errorf("%w: %s is not an object", ErrMalformed, name)
		}
	}
	e.content, _ = o.Get("content")
	if u, ok := o.Get("unsigned"); ok {
		e.unsigned = u
	}
	if e.prevEvents, err = eventRefs(o, "prev_events", v.Format, MaxPrevEvents); err != nil {
		return err
	}
	if e.authEvents, err = eventRefs(o, "auth_events", v.Format, MaxAuthEvents); err != nil {
		return err
	}
	if err := e.fillRedacts(); err != nil {
		return err
	}

	isV12Create := v.RoomIDFromCreateEvent && e.typ == "m.room.create"
	if isV12Create {
		if _, ok := o.Get("room_id"); ok {
			return fmt.Errorf("%w: an m.room.create event of room version %s has no room_id", ErrMalformed, v.ID)
		}
	} else {
		if e.roomID, err = idField(o, "room_id", true); err != nil {
			return err
		}
		if !strings.HasPrefix(e.roomID, "!") {
			return fmt.Errorf("%w: room_id %q", ErrMalformed, e.roomID)
		}
	}

	if v.EventIDs == IDServerMinted {
		if e.id, err = idField(o, "event_id", true); err != nil {
			return err
		}
		if !strings.HasPrefix(e.id, "$") {
			return fmt.Errorf("%w: event_id %q", ErrMalformed, e.id)
		}
		return nil
	}
	var h [sha256.Size]byte
	if ref != nil {
		h = *ref
	} else if h, err = referenceHash(o, v); err != nil {
		return err
	}
	e.id = hashID('$', h, v.EventIDs)
	if isV12Create {
		e.roomID = hashID('!', h, IDURLSafeBase64)
	}
	return nil
}

func (e *Event) fillRedacts() error {
	if e.typ != "m.room.redaction" {
		return nil
	}
	if !e.version.RedactsInContent {
		r, err := idField(e.obj, "redacts", false)
		e.redacts = r
		return err
	}
	c, err := keys.ParseObject(e.content)
	if err != nil {
		return fmt.Errorf("%w: content: %w", ErrMalformed, err)
	}
	r, err := idField(c, "redacts", false)
	if err != nil {
		return fmt.Errorf("%w (in content)", err)
	}
	e.redacts = r
	return nil
}

// idField reads a string member no longer than MaxIDBytes.
func idField(o keys.Object, name string, required bool) (string, error) {
	val, ok := o.Get(name)
	if !ok {
		if required {
			return "", fmt.Errorf("%w: no %s", ErrMalformed, name)
		}
		return "", nil
	}
	s, ok := keys.Unquote(val)
	if !ok {
		return "", fmt.Errorf("%w: %s is not a string", ErrMalformed, name)
	}
	if len(s) > MaxIDBytes {
		return "", fmt.Errorf("%w: %s is longer than %d bytes", ErrTooLarge, name, MaxIDBytes)
	}
	return s, nil
}

func intField(o keys.Object, name string) (int64, error) {
	val, ok := o.Get(name)
	if !ok {
		return 0, fmt.Errorf("%w: no %s", ErrMalformed, name)
	}
	n, err := strconv.ParseInt(string(val), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s is not an integer", ErrMalformed, name)
	}
	return n, nil
}

// eventRefs reads prev_events or auth_events: event ids (FormatV2) or [id, {hashes}] pairs
// (FormatV1), of which only the ids are kept.
func eventRefs(o keys.Object, name string, f Format, max int) ([]string, error) {
	val, ok := o.Get(name)
	if !ok {
		return nil, fmt.Errorf("%w: no %s", ErrMalformed, name)
	}
	var ids []string
	if f == FormatV1 {
		var pairs [][]json.RawMessage
		if err := json.Unmarshal(val, &pairs); err != nil || val[0] != '[' {
			return nil, fmt.Errorf("%w: %s is not a list of [event_id, hashes] pairs", ErrMalformed, name)
		}
		ids = make([]string, len(pairs))
		for i, p := range pairs {
			if len(p) != 2 || len(p[1]) == 0 || p[1][0] != '{' {
				return nil, fmt.Errorf("%w: %s is not a list of [event_id, hashes] pairs", ErrMalformed, name)
			}
			if err := json.Unmarshal(p[0], &ids[i]); err != nil {
				return nil, fmt.Errorf("%w: %s holds a non-string event id", ErrMalformed, name)
			}
		}
	} else if err := json.Unmarshal(val, &ids); err != nil || val[0] != '[' {
		return nil, fmt.Errorf("%w: %s is not a list of event ids", ErrMalformed, name)
	}
	if len(ids) > max {
		return nil, fmt.Errorf("%w: more than %d %s", ErrMalformed, max, name)
	}
	for _, id := range ids {
		if !strings.HasPrefix(id, "$") {
			return nil, fmt.Errorf("%w: %s holds %q, not an event id", ErrMalformed, name, id)
		}
		if len(id) > MaxIDBytes {
			return nil, fmt.Errorf("%w: an event id in %s is longer than %d bytes", ErrTooLarge, name, MaxIDBytes)
		}
	}
	return ids, nil
}
