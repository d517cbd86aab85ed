// Package stateres implements state resolution: given the states of a room at the tips of its
// forks, it computes the one state that every server in the room agrees on. Room version 1 uses
// the original algorithm (v1), versions 2–11 the power-ordered algorithm (v2), and version 12 the
// v2.1 revision of it.
//
// The package is pure: events come from a Loader, and the authorisation rules from an Authorizer,
// both supplied by the caller.
//
// Where the spec leaves room for reading, v2 follows its text, and Synapse where the text is
// silent:
//   - the full auth chain of a state set includes the state's own events (as Synapse computes
//     the auth difference);
//   - step 1 adds every event of a power event's auth chain that is in the full conflicted set,
//     even when reached through events outside it, and the topological order respects ancestry
//     through such events (Synapse only follows auth_events links inside the full conflicted
//     set; the results differ only for contrived DAGs);
//   - the m.room.create event is not a power event (the spec's definition; Synapse adds it);
//   - events previously rejected for the state before them are replayed like any other (the
//     spec; Synapse keeps them out), while a rejected auth event never stands in for missing
//     state.
package stateres

import (
	"errors"
	"fmt"

	"myelin/roomserver/auth"
	"myelin/roomserver/event"
)

// A StateMap is a room state: the event id for each (type, state_key).
type StateMap map[event.StateTuple]string

// A Loader gives state resolution the events it needs. Implementations fetch from storage; the
// results must not depend on anything but the ids asked for.
type Loader interface {
	// Events returns the events with the given ids. An id the loader does not know is left out
	// of the map rather than reported as an error; Resolve fails with ErrMissingEvent if it
	// needed that event.
	Events(ids []string) (map[string]*event.Event, error)
	// AuthChain returns the union of the auth chains of the given events: every event reachable
	// from them through auth_events links, which excludes the given events themselves unless one
	// is in the auth chain of another. Whether the implicit create event of a version 12 room is
	// included does not change any result. WalkAuthChain computes it for loaders without an
	// index.
	AuthChain(ids []string) (map[string]struct{}, error)
	// Rejected returns which of the given events this server rejected. State resolution needs
	// it because a rejected auth event must not stand in for missing state (v2 iterative auth
	// checks).
	Rejected(ids []string) (map[string]struct{}, error)
}

// An Authorizer applies the authorisation rules of e's room version to e against state, and
// returns nil if e is allowed. auth.Check is the one to pass; the parameter keeps the rules
// replaceable in tests. Any error counts as "not allowed", so it must not fail for other reasons.
type Authorizer func(e *event.Event, state auth.AuthEvents) error

// Errors returned by Resolve. Details are wrapped with %w.
var (
	// ErrMissingEvent: an event the algorithm needs is unknown to the Loader.
	ErrMissingEvent = errors.New("stateres: missing event")
	// ErrBadEvent: an event cannot take part in state resolution (a non-state event in a state
	// map or an auth chain, or an event of another room).
	ErrBadEvent = errors.New("stateres: unusable event")
	// ErrUnknownAlgorithm: the room version names no state resolution algorithm this package has.
	ErrUnknownAlgorithm = errors.New("stateres: unknown state resolution algorithm")
)

// Resolve resolves the given states of a room of version v into one. The state sets are not
// modified. Resolving no state gives the empty state; resolving one gives a copy of it.
func Resolve(v event.RoomVersion, stateSets []StateMap, l Loader, authorize Authorizer) (StateMap, error) {
	switch v.StateRes {
	case event.StateResV1:
		return resolveV1(v, stateSets, l, authorize)
	case event.StateResV2, event.StateResV2_1:
		return resolveV2(v, stateSets, l, authorize)
	default:
		return nil, fmt.Errorf("%w: %d (room version %q)", ErrUnknownAlgorithm, v.StateRes, v.ID)
	}
}
