package stateres

import (
	"fmt"
	"maps"

	"myelin/roomserver/event"
)

// resolveV2 is the state resolution of room versions 2–11 (rooms/v2.md) and, with the changes of
// room version 12 (rooms/v12.md), v2.1: the conflicted state subgraph joins the full conflicted
// set, and the power events are replayed from the empty state rather than from the unconflicted
// state map.
func resolveV2(v event.RoomVersion, stateSets []StateMap, l Loader, authorize Authorizer) (StateMap, error) {
	unconflicted, conflicted := separateV2(stateSets)
	if len(conflicted) == 0 {
		return unconflicted, nil
	}
	s := newStore(v, l)

	// The full conflicted set.
	conflictedIDs := map[string]struct{}{}
	for _, ids := range conflicted {
		for _, id := range ids {
			conflictedIDs[id] = struct{}{}
		}
	}
	full, err := s.authDifference(stateSets, unconflicted)
	if err != nil {
		return nil, err
	}
	maps.Copy(full, conflictedIDs)
	if v.StateRes == event.StateResV2_1 {
		sub, err := s.conflictedSubgraph(conflictedIDs)
		if err != nil {
			return nil, err
		}
		maps.Copy(full, sub)
	}
	fullIDs := setKeys(full)
	if err := s.load(fullIDs); err != nil {
		return nil, fmt.Errorf("full conflicted set: %w", err)
	}
	for _, id := range fullIDs {
		if _, _, err := s.getState(id); err != nil {
			return nil, err
		}
	}

	// 1. The power events and the part of their auth chains in the full conflicted set, in
	// reverse topological power ordering.
	var powerIDs []string
	for _, id := range fullIDs {
		isPower, err := isPowerEvent(s.events[id])
		if err != nil {
			return nil, err
		}
		if isPower {
			powerIDs = append(powerIDs, id)
		}
	}
	powerChain, err := s.authChainOf(powerIDs)
	if err != nil {
		return nil, err
	}
	x := map[string]struct{}{}
	for _, id := range powerIDs {
		x[id] = struct{}{}
	}
	for id := range powerChain {
		if _, ok := full[id]; ok {
			x[id] = struct{}{}
		}
	}
	sortedPower, err := s.reverseTopologicalPowerOrder(x, powerChain)
	if err != nil {
		return nil, err
	}

	// 2. Replay them over the unconflicted state map (v2) or the empty state (v2.1).
	partial := StateMap{}
	if v.StateRes == event.StateResV2 {
		partial = maps.Clone(unconflicted)
	}
	if err := s.iterativeAuthChecks(partial, sortedPower, authorize); err != nil {
		return nil, err
	}

	// 3. The other events, in mainline ordering of the power levels resolved so far.
	var rest []string
	for _, id := range fullIDs {
		if _, ok := x[id]; !ok {
			rest = append(rest, id)
		}
	}
	rest, err = s.mainlineOrder(rest, partial[powerLevelsKey])
	if err != nil {
		return nil, err
	}

	// 4. Replay them over the partially resolved state.
	if err := s.iterativeAuthChecks(partial, rest, authorize); err != nil {
		return nil, err
	}

	// 5. The unconflicted state map has the last word.
	maps.Copy(partial, unconflicted)
	return partial, nil
}

// separateV2 splits the state sets into the unconflicted state map (keys with the same event in
// every set) and the conflicted state set, by key. A key missing from some set is conflicted.
func separateV2(stateSets []StateMap) (unconflicted StateMap, conflicted map[event.StateTuple][]string) {
	unconflicted = StateMap{}
	conflicted = map[event.StateTuple][]string{}
	if len(stateSets) == 0 {
		return unconflicted, conflicted
	}
	keys := map[event.StateTuple]struct{}{}
	for _, set := range stateSets {
		for k := range set {
			keys[k] = struct{}{}
		}
	}
	for k := range keys {
		first, inAll := stateSets[0][k]
		same := inAll
		var ids []string
		seen := map[string]bool{}
		for _, set := range stateSets {
			id, ok := set[k]
			if !ok {
				inAll = false
				continue
			}
			if id != first {
				same = false
			}
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
		if inAll && same {
			unconflicted[k] = first
		} else {
			conflicted[k] = ids
		}
	}
	return unconflicted, conflicted
}

// authDifference is ∪Cᵢ − ∩Cᵢ, where Cᵢ is the full auth chain of state set i. Like Synapse,
// we count the events of the state set itself as part of its full auth chain: an event in every
// state set is then never in the difference, whatever cites it.
//
// The unconflicted events are in every Cᵢ together with their auth chains, so their chain (U) is
// computed once; each set adds the chain of its conflicted events (Dᵢ), and an event is in the
// difference when it is outside U and in some Dᵢ but not all.
func (s *store) authDifference(stateSets []StateMap, unconflicted StateMap) (map[string]struct{}, error) {
	uIDs := make([]string, 0, len(unconflicted))
	for _, id := range unconflicted {
		uIDs = append(uIDs, id)
	}
	u, err := s.authChainOf(uIDs)
	if err != nil {
		return nil, err
	}
	for _, id := range uIDs {
		u[id] = struct{}{}
	}
	count := map[string]int{}
	for _, set := range stateSets {
		var ids []string
		for k, id := range set {
			if unconflicted[k] != id {
				ids = append(ids, id)
			}
		}
		d, err := s.authChainOf(ids)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			d[id] = struct{}{}
		}
		for id := range d {
			count[id]++
		}
	}
	diff := map[string]struct{}{}
	for id, n := range count {
		if _, inU := u[id]; !inU && n < len(stateSets) {
			diff[id] = struct{}{}
		}
	}
	return diff, nil
}

// isPowerEvent: power levels, join rules, and memberships by which someone else removes a user
// (kicks, bans): the events that can take away someone's ability to act.
func isPowerEvent(e *event.Event) (bool, error) {
	if !e.IsState() {
		return false, nil
	}
	switch e.Type() {
	case "m.room.power_levels", "m.room.join_rules":
		return true, nil
	case "m.room.member":
		m, err := e.Membership()
		if err != nil {
			return false, fmt.Errorf("%w: %s: %w", ErrBadEvent, e.ID(), err)
		}
		return (m == "leave" || m == "ban") && !e.StateKeyEquals(e.Sender()), nil
	}
	return false, nil
}

// iterativeAuthChecks applies the events in order to state, each one only if the auth rules
// allow it against state, falling back to its own non-rejected auth events for keys the state
// lacks.
func (s *store) iterativeAuthChecks(state StateMap, ids []string, authorize Authorizer) error {
	var authIDs []string
	for _, id := range ids {
		e, err := s.get(id)
		if err != nil {
			return err
		}
		authIDs = append(authIDs, s.authEventIDs(e)...)
	}
	if err := s.loadRejected(authIDs); err != nil {
		return err
	}
	for _, id := range ids {
		e, t, err := s.getState(id)
		if err != nil {
			return err
		}
		auth, err := s.authEvents(e)
		if err != nil {
			return err
		}
		var lookupErr error
		lookup := func(k event.StateTuple) *event.Event {
			if sid, ok := state[k]; ok {
				se, err := s.get(sid)
				if err != nil {
					lookupErr = fmt.Errorf("state %s/%q for %s: %w", k.Type, k.StateKey, id, err)
					return nil
				}
				return se
			}
			if ae := auth[k]; ae != nil && !s.rejected[ae.ID()] {
				return ae
			}
			return nil
		}
		allowed := authorize(e, authState(lookup)) == nil
		if lookupErr != nil {
			return lookupErr
		}
		if allowed {
			state[t] = id
		}
	}
	return nil
}
