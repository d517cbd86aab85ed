// Package roomserver owns the rooms of this server: input, the one write path for events,
// serialised per room; perform, the multi-event actions (create a room, join, leave, invite,
// redact, upgrade); and query, the reads (state, membership, history visibility).
//
// Every event that enters a room goes through input: it is authorised against the room state,
// then stored with its state snapshot, the room's current state, memberships, forward
// extremities and a stream position in one transaction, and only then announced to
// subscribers.
package roomserver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"myelin/keys"
	"myelin/roomserver/event"
	"myelin/storage"
)

// Errors of the room server; callers match them with errors.Is and map them to Matrix errors.
var (
	// ErrNotFound: the room or event is unknown to this server.
	ErrNotFound = errors.New("roomserver: not found")
	// ErrNotAllowed: the auth rules (or a rule of the action) refuse the event. The auth rule
	// that refused it is wrapped too (errors.As with *auth.RuleError).
	ErrNotAllowed = errors.New("roomserver: not allowed")
	// ErrInvalid: the request itself is malformed (bad content, bad user id, ...).
	ErrInvalid = errors.New("roomserver: invalid request")
	// ErrRemoteJoinUnsupported: joining a room this server is not in needs a remote join over
	// federation, which the room server cannot make yet.
	ErrRemoteJoinUnsupported = errors.New("roomserver: joining a room on another server is not supported yet")
	// ErrRejected: a remote event failed the auth rules and was stored as rejected.
	ErrRejected = errors.New("roomserver: event rejected")
	// ErrMissingEvents is wrapped by *MissingEventsError.
	ErrMissingEvents = errors.New("roomserver: events missing")
)

// MissingEventsError names the events a remote event refers to that this server does not have;
// the caller fetches them over federation and tries again.
type MissingEventsError struct {
	Prev []string
	Auth []string
}

func (e *MissingEventsError) Error() string {
	return fmt.Sprintf("roomserver: events missing: prev %v, auth %v", e.Prev, e.Auth)
}

func (e *MissingEventsError) Unwrap() error { return ErrMissingEvents }

// Options configure a Server. The zero value is usable.
type Options struct {
	// DefaultRoomVersion is the version of new rooms; event.DefaultRoomVersion if empty.
	DefaultRoomVersion string
	// EncryptPrivateRooms turns on m.room.encryption in rooms created with a private preset.
	EncryptPrivateRooms bool
	// Now is the clock; time.Now if nil.
	Now func() time.Time
	// Federation makes joins, leaves, knocks and invites through other servers; nil: this
	// server only works with rooms it is in (see federation.go).
	Federation Federation
}

// NewEvent is what subscribers hear after an event entered a room's timeline.
type NewEvent struct {
	RoomID    string
	Event     *event.Event
	StreamPos int64
	// RoomNID is the room's id in storage: it lets a subscriber keep per-room state without a
	// query (the federation sender skips waking up for rooms without other servers). It is 0
	// only for an invite to a room this server is not in (ReceiveInvite), which is kept apart
	// from the room events: its stream position is not one of an event of the events table.
	RoomNID storage.RoomNID
}

// Server is the room server.
type Server struct {
	db         *storage.DB
	serverName string
	key        keys.SigningKey
	opts       Options

	mu           sync.Mutex
	rooms        map[string]*roomSlot
	useClock     uint64 // ticks on every lockRoom, for evicting idle rooms
	roomVersions map[storage.RoomNID]event.RoomVersion

	intern interner

	subsMu  sync.RWMutex
	subs    map[int]func(NewEvent)
	nextSub int

	// searchMu lets one search indexer batch run at a time (search_indexer.go).
	searchMu sync.Mutex

	// histories caches users' history visibility state at snapshots (visibility.go).
	histMu    sync.Mutex
	histories map[historyKey]historyState
}

// New returns a room server storing rooms in db and signing events as serverName with key.
func New(db *storage.DB, serverName string, key keys.SigningKey, opts Options) *Server {
	if opts.DefaultRoomVersion == "" {
		opts.DefaultRoomVersion = event.DefaultRoomVersion
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Server{
		db: db, serverName: serverName, key: key, opts: opts,
		rooms: map[string]*roomSlot{}, roomVersions: map[storage.RoomNID]event.RoomVersion{},
		intern: interner{
			types: map[string]storage.TypeNID{}, keys: map[string]storage.StateKeyNID{},
			typeNames: map[storage.TypeNID]string{}, keyNames: map[storage.StateKeyNID]string{},
		},
		subs: map[int]func(NewEvent){},
	}
}

// Subscribe calls fn after every event that enters a room's timeline, in stream order within a
// room, while the room is still locked: fn must return quickly (signal a channel, no I/O).
// The returned function unsubscribes.
func (s *Server) Subscribe(fn func(NewEvent)) (unsubscribe func()) {
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	id := s.nextSub
	s.nextSub++
	s.subs[id] = fn
	return func() {
		s.subsMu.Lock()
		defer s.subsMu.Unlock()
		delete(s.subs, id)
	}
}

func (s *Server) notify(n NewEvent) {
	s.subsMu.RLock()
	defer s.subsMu.RUnlock()
	for _, fn := range s.subs {
		fn(n)
	}
}

// ServerName is the name this server signs events as.
func (s *Server) ServerName() string { return s.serverName }

func (s *Server) isLocalUser(userID string) bool {
	u, err := event.ParseUserID(userID)
	return err == nil && string(u.Domain()) == s.serverName
}

// interner caches the short ids of event types and state keys. Only committed ids enter it: an
// id allocated in a transaction that rolled back may be handed out again for another string.
type interner struct {
	mu        sync.RWMutex
	types     map[string]storage.TypeNID
	keys      map[string]storage.StateKeyNID
	typeNames map[storage.TypeNID]string
	keyNames  map[storage.StateKeyNID]string
}

func (in *interner) lookup(t event.StateTuple) (storage.StateKey, bool) {
	in.mu.RLock()
	defer in.mu.RUnlock()
	tn, ok1 := in.types[t.Type]
	kn, ok2 := in.keys[t.StateKey]
	return storage.StateKey{Type: tn, StateKey: kn}, ok1 && ok2
}

func (in *interner) add(t event.StateTuple, k storage.StateKey) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.types[t.Type], in.typeNames[k.Type] = k.Type, t.Type
	in.keys[t.StateKey], in.keyNames[k.StateKey] = k.StateKey, t.StateKey
}

// tuples resolves short ids to tuples, asking storage for the ones not cached.
func (in *interner) tuples(ctx context.Context, r storage.Reader, ks []storage.StateKey) (map[storage.StateKey]event.StateTuple, error) {
	out := make(map[storage.StateKey]event.StateTuple, len(ks))
	var missT []storage.TypeNID
	var missK []storage.StateKeyNID
	in.mu.RLock()
	for _, k := range ks {
		tn, ok1 := in.typeNames[k.Type]
		kn, ok2 := in.keyNames[k.StateKey]
		if ok1 && ok2 {
			out[k] = event.StateTuple{Type: tn, StateKey: kn}
			continue
		}
		if !ok1 {
			missT = append(missT, k.Type)
		}
		if !ok2 {
			missK = append(missK, k.StateKey)
		}
	}
	in.mu.RUnlock()
	if len(missT) == 0 && len(missK) == 0 {
		return out, nil
	}
	ts, kss, err := storage.StateKeyStrings(ctx, r, missT, missK)
	if err != nil {
		return nil, err
	}
	in.mu.Lock()
	for n, s := range ts {
		in.typeNames[n], in.types[s] = s, n
	}
	for n, s := range kss {
		in.keyNames[n], in.keys[s] = s, n
	}
	for _, k := range ks {
		if _, ok := out[k]; ok {
			continue
		}
		tn, ok1 := in.typeNames[k.Type]
		kn, ok2 := in.keyNames[k.StateKey]
		if !ok1 || !ok2 {
			in.mu.Unlock()
			return nil, fmt.Errorf("roomserver: unknown state key ids %v", k)
		}
		out[k] = event.StateTuple{Type: tn, StateKey: kn}
	}
	in.mu.Unlock()
	return out, nil
}

// txInterner assigns short ids inside one transaction and hands them to the interner only
// after the commit.
type txInterner struct {
	in  *interner
	new map[event.StateTuple]storage.StateKey
}

func (ti *txInterner) key(ctx context.Context, tx *storage.Tx, t event.StateTuple) (storage.StateKey, error) {
	if k, ok := ti.in.lookup(t); ok {
		return k, nil
	}
	if k, ok := ti.new[t]; ok {
		return k, nil
	}
	tn, err := tx.AssignTypeNID(ctx, t.Type)
	if err != nil {
		return storage.StateKey{}, err
	}
	kn, err := tx.AssignStateKeyNID(ctx, t.StateKey)
	if err != nil {
		return storage.StateKey{}, err
	}
	k := storage.StateKey{Type: tn, StateKey: kn}
	if ti.new == nil {
		ti.new = map[event.StateTuple]storage.StateKey{}
	}
	ti.new[t] = k
	return k, nil
}

func (ti *txInterner) committed() {
	for t, k := range ti.new {
		ti.in.add(t, k)
	}
}

func isNotFound(err error) bool { return errors.Is(err, storage.ErrNotFound) }
