package event

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"myelin/keys"
)

// Size limits from the spec (server-server API, "Size limits").
const (
	MaxEventBytes = 65536 // the whole PDU, as canonical JSON, signatures included
	MaxIDBytes    = 255   // event_id, room_id, sender, type, state_key
)

// Errors returned by Parse. They wrap the details with %w, so callers match with errors.Is.
var (
	ErrTooLarge  = errors.New("event too large")
	ErrMalformed = errors.New("malformed event")
)

// An Event is a parsed, validated PDU of a known room version. It is immutable: every method
// returns values computed once at parse time, and JSON returns the exact bytes that were parsed.
type Event struct {
	version RoomVersion
	raw     []byte // canonical JSON of the full PDU (signatures and unsigned included)
	id      string

	roomID         string
	typ            string
	stateKey       *string
	sender         string
	originServerTS int64
	depth          int64
	content        json.RawMessage
	prevEvents     []string
	authEvents     []string
	redacts        string
	unsigned       json.RawMessage

	obj          keys.Object // the members of raw, for redaction, hashing and signatures
	senderDomain ServerName

	// derived holds values other packages compute from this event (see Derived). The current
	// create and power levels events of a room are read by the auth check of every event
	// sent to it; parsing their content once instead of each time is a measurable share of
	// local input.
	derivedMu sync.Mutex
	derived   map[any]any
}

// Derived returns the value compute derives from the event under key, computing it on the
// first call and returning that same value after. compute must be a pure function of the
// event (so that a value computed twice by concurrent first calls is the same value) and the
// caller must not modify what it returns. key should be a value of an unexported type of the
// calling package, as with context keys, so that packages cannot collide.
func (e *Event) Derived(key any, compute func() any) any {
	e.derivedMu.Lock()
	v, ok := e.derived[key]
	e.derivedMu.Unlock()
	if ok {
		return v
	}
	// compute runs unlocked, so that it may itself ask for other derived values of e.
	v = compute()
	e.derivedMu.Lock()
	defer e.derivedMu.Unlock()
	if prev, ok := e.derived[key]; ok {
		return prev
	}
	if e.derived == nil {
		e.derived = make(map[any]any, 2)
	}
	e.derived[key] = v
	return v
}

// Accessors. Slices are shared with the Event: callers must not modify them.

func (e *Event) Version() RoomVersion         { return e.version }
func (e *Event) ID() string                   { return e.id }
func (e *Event) RoomID() string               { return e.roomID }
func (e *Event) Type() string                 { return e.typ }
func (e *Event) StateKey() *string            { return e.stateKey }
func (e *Event) Sender() string               { return e.sender }
func (e *Event) OriginServerTS() int64        { return e.originServerTS }
func (e *Event) Depth() int64                 { return e.depth }
func (e *Event) Content() json.RawMessage     { return e.content }
func (e *Event) PrevEventIDs() []string       { return e.prevEvents }
func (e *Event) AuthEventIDs() []string       { return e.authEvents }
func (e *Event) Unsigned() json.RawMessage    { return e.unsigned }
func (e *Event) JSON() []byte                 { return e.raw }
func (e *Event) IsState() bool                { return e.stateKey != nil }
func (e *Event) StateKeyEquals(s string) bool { return e.stateKey != nil && *e.stateKey == s }

// SenderDomain is the server of the sender: the server whose signature the event needs.
func (e *Event) SenderDomain() ServerName { return e.senderDomain }

// Redacts is the id of the event an m.room.redaction redacts: the top-level "redacts" before v11,
// content.redacts from v11 on. Empty for other events.
func (e *Event) Redacts() string { return e.redacts }

// StateTuple is the (type, state_key) pair a state event sets.
type StateTuple struct {
	Type     string
	StateKey string
}

// Tuple returns the (type, state_key) of a state event; ok is false for non-state events.
func (e *Event) Tuple() (t StateTuple, ok bool) {
	if e.stateKey == nil {
		return StateTuple{}, false
	}
	return StateTuple{e.typ, *e.stateKey}, true
}

// Membership returns content.membership of an m.room.member event.
func (e *Event) Membership() (string, error) {
	if e.typ != "m.room.member" {
		return "", fmt.Errorf("%w: %s is not a membership event", ErrMalformed, e.typ)
	}
	var c struct {
		Membership *string `json:"membership"`
	}
	if err := json.Unmarshal(e.content, &c); err != nil || c.Membership == nil {
		return "", fmt.Errorf("%w: membership event without content.membership", ErrMalformed)
	}
	return *c.Membership, nil
}
