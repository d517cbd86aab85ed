package stateres

import (
	"bytes"
	"cmp"
	"crypto/sha1"
	"maps"
	"slices"

	"myelin/roomserver/event"
)

// resolveV1 is the state resolution of room version 1 (rooms/v1.md). It is known to reset state
// in some forks; room version 2 replaced it, but version 1 rooms still exist.
//
// Where the spec is silent we do what Synapse and gomatrixserverlib do, for the same answer:
//   - each conflicted key is resolved against the state as it stood before its pass (power
//     levels, join rules, members, the rest), so that the order of keys within a pass does not
//     matter;
//   - for the other events, when none is allowed the one sorted last (lowest depth, highest
//     sha1(event_id)) is kept, so that no conflicted key disappears from the state.
func resolveV1(v event.RoomVersion, stateSets []StateMap, l Loader, authorize Authorizer) (StateMap, error) {
	r, conflicted := separateV1(stateSets)
	if len(conflicted) == 0 {
		return r, nil
	}
	s := newStore(v, l)
	var all []string
	for _, ids := range conflicted {
		all = append(all, ids...)
	}
	if err := s.load(all); err != nil {
		return nil, err
	}
	for _, id := range all {
		if _, _, err := s.getState(id); err != nil {
			return nil, err
		}
	}

	passes := []func(event.StateTuple) bool{
		func(k event.StateTuple) bool { return k == powerLevelsKey },
		func(k event.StateTuple) bool { return k.Type == "m.room.join_rules" },
		func(k event.StateTuple) bool { return k.Type == "m.room.member" },
	}
	resolved := map[event.StateTuple]bool{}
	for _, inPass := range passes {
		winners := StateMap{}
		for k, ids := range conflicted {
			if resolved[k] || !inPass(k) {
				continue
			}
			id, err := s.resolveAuthKeyV1(r, k, ids, authorize)
			if err != nil {
				return nil, err
			}
			winners[k] = id
			resolved[k] = true
		}
		maps.Copy(r, winners)
	}

	winners := StateMap{}
	for k, ids := range conflicted {
		if resolved[k] {
			continue
		}
		sorted := s.sortV1(ids)
		winner := sorted[0] // the fallback: lowest depth
		for i := len(sorted) - 1; i >= 0; i-- {
			ok, err := s.allowedV1(r, sorted[i], authorize)
			if err != nil {
				return nil, err
			}
			if ok {
				winner = sorted[i]
				break
			}
		}
		winners[k] = winner
	}
	maps.Copy(r, winners)
	return r, nil
}

// resolveAuthKeyV1 starts from the oldest event for k and moves to each newer one for as long
// as the newer one is allowed by the state with the current candidate in it.
func (s *store) resolveAuthKeyV1(r StateMap, k event.StateTuple, ids []string, authorize Authorizer) (string, error) {
	sorted := s.sortV1(ids)
	candidate := sorted[0]
	trial := maps.Clone(r)
	for _, id := range sorted[1:] {
		trial[k] = candidate
		ok, err := s.allowedV1(trial, id, authorize)
		if err != nil {
			return "", err
		}
		if !ok {
			break
		}
		candidate = id
	}
	return candidate, nil
}

// allowedV1 checks id against the auth rules in state r.
func (s *store) allowedV1(r StateMap, id string, authorize Authorizer) (bool, error) {
	e := s.events[id]
	var lookupErr error
	lookup := func(k event.StateTuple) *event.Event {
		sid, ok := r[k]
		if !ok {
			return nil
		}
		se, err := s.get(sid)
		if err != nil {
			lookupErr = err
			return nil
		}
		return se
	}
	allowed := authorize(e, authState(lookup)) == nil
	if lookupErr != nil {
		return false, lookupErr
	}
	return allowed, nil
}

// sortV1 orders ids by ascending depth, then descending sha1(event_id).
func (s *store) sortV1(ids []string) []string {
	type key struct {
		depth int64
		sum   [sha1.Size]byte
		id    string
	}
	keys := make([]key, len(ids))
	for i, id := range ids {
		keys[i] = key{s.events[id].Depth(), sha1.Sum([]byte(id)), id}
	}
	slices.SortFunc(keys, func(a, b key) int {
		if c := cmp.Compare(a.depth, b.depth); c != 0 {
			return c
		}
		return -bytes.Compare(a.sum[:], b.sum[:])
	})
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.id
	}
	return out
}

// separateV1 splits the state sets into the state without conflicts and the conflicted events by
// key. Unlike v2, a key only some sets have is not a conflict: it is a conflict when sets give
// it different events.
func separateV1(stateSets []StateMap) (StateMap, map[event.StateTuple][]string) {
	values := map[event.StateTuple][]string{}
	for _, set := range stateSets {
		for k, id := range set {
			if !slices.Contains(values[k], id) {
				values[k] = append(values[k], id)
			}
		}
	}
	r := StateMap{}
	conflicted := map[event.StateTuple][]string{}
	for k, ids := range values {
		if len(ids) == 1 {
			r[k] = ids[0]
		} else {
			conflicted[k] = ids
		}
	}
	return r, conflicted
}
