package roomserver

import (
	"context"
	"slices"

	"myelin/roomserver/event"
	"myelin/roomserver/stateres"
)

// pendingLoader is the loader of state resolution when a state to resolve holds an event that
// is not stored yet: the remote event being input, whose state after it meets the room's
// current state when it forks the room (two servers changing the power levels at once). It
// serves that event from memory and its auth chain from its auth events, which are stored.
type pendingLoader struct {
	loader
	pending map[string]*event.Event
}

var _ stateres.Loader = (*pendingLoader)(nil)

// loaderFor is the loader for resolving sets: the plain one unless a set holds an event not
// stored yet.
func (s *Server) loaderFor(ctx context.Context, sets []map[event.StateTuple]*eventRef) stateres.Loader {
	pending := map[string]*event.Event{}
	for _, set := range sets {
		for _, r := range set {
			if r.nid == 0 && r.ev != nil {
				pending[r.id] = r.ev
			}
		}
	}
	if len(pending) == 0 {
		return &loader{ctx: ctx, s: s}
	}
	return &pendingLoader{loader: loader{ctx: ctx, s: s}, pending: pending}
}

func (l *pendingLoader) Events(ids []string) (map[string]*event.Event, error) {
	stored, mem := l.split(ids)
	out, err := l.loader.Events(stored)
	if err != nil {
		return nil, err
	}
	for _, ev := range mem {
		out[ev.ID()] = ev
	}
	return out, nil
}

func (l *pendingLoader) AuthChain(ids []string) (map[string]struct{}, error) {
	stored, mem := l.split(ids)
	var direct []string
	for _, ev := range mem {
		direct = append(direct, ev.AuthEventIDs()...)
	}
	var ask []string // without repeats: the plain loader counts what it finds
	for _, id := range append(stored, direct...) {
		if !slices.Contains(ask, id) {
			ask = append(ask, id)
		}
	}
	out, err := l.loader.AuthChain(ask)
	if err != nil {
		return nil, err
	}
	for _, id := range direct {
		out[id] = struct{}{}
	}
	return out, nil
}

func (l *pendingLoader) Rejected(ids []string) (map[string]struct{}, error) {
	stored, _ := l.split(ids)
	return l.loader.Rejected(stored)
}

// split parts ids into stored events and pending ones.
func (l *pendingLoader) split(ids []string) (stored []string, mem []*event.Event) {
	for _, id := range ids {
		if ev := l.pending[id]; ev != nil {
			mem = append(mem, ev)
		} else {
			stored = append(stored, id)
		}
	}
	return stored, mem
}
