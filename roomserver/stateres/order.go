package stateres

import (
	"cmp"
	"container/heap"
	"fmt"
	"math"
	"slices"
)

// loadAuthOf fetches the auth events of the given (loaded) events in one call.
func (s *store) loadAuthOf(ids []string) error {
	var want []string
	for _, id := range ids {
		want = append(want, s.authEventIDs(s.events[id])...)
	}
	return s.load(want)
}

// reverseTopologicalPowerOrder sorts x so that every event comes after the events of x in its auth
// chain, choosing at each step (Kahn's algorithm) the ready event whose sender has the greatest
// power level, then the smallest origin_server_ts, then the smallest event id. chain holds the
// auth chain of x: ancestry that leaves x and comes back still orders the events.
func (s *store) reverseTopologicalPowerOrder(x map[string]struct{}, chain map[string]struct{}) ([]string, error) {
	region := setKeys(chain)
	for id := range x {
		if _, ok := chain[id]; !ok {
			region = append(region, id)
		}
	}
	if err := s.load(region); err != nil {
		return nil, fmt.Errorf("power events: %w", err)
	}
	inRegion := make(map[string]bool, len(region))
	for _, id := range region {
		inRegion[id] = true
	}

	// For an event outside x, the events of x it reaches first through auth_events.
	nearest := map[string][]string{}
	const (
		visiting = 1
		done     = 2
	)
	mark := map[string]int{}
	resolveNearest := func(start string) error {
		type frame struct {
			id   string
			next int
		}
		stack := []frame{{id: start}}
		mark[start] = visiting
		for len(stack) > 0 {
			f := &stack[len(stack)-1]
			auth := s.authEventIDs(s.events[f.id])
			if f.next < len(auth) {
				a := auth[f.next]
				f.next++
				if _, inX := x[a]; inX || !inRegion[a] {
					continue
				}
				switch mark[a] {
				case visiting:
					return fmt.Errorf("%w: auth_events cycle through %s", ErrBadEvent, a)
				case 0:
					mark[a] = visiting
					stack = append(stack, frame{id: a})
				}
				continue
			}
			seen := map[string]bool{}
			var near []string
			for _, a := range auth {
				var add []string
				if _, inX := x[a]; inX {
					add = []string{a}
				} else if inRegion[a] {
					add = nearest[a]
				}
				for _, n := range add {
					if !seen[n] {
						seen[n] = true
						near = append(near, n)
					}
				}
			}
			nearest[f.id] = near
			mark[f.id] = done
			stack = stack[:len(stack)-1]
		}
		return nil
	}

	ids := setKeys(x)
	if err := s.loadAuthOf(ids); err != nil {
		return nil, err
	}
	items := make(map[string]*powerItem, len(ids))
	waiting := map[string]int{}       // number of x-ancestors not yet emitted
	unblocks := map[string][]string{} // x-ancestor -> the events waiting for it
	for _, id := range ids {
		e := s.events[id]
		p, err := s.senderPower(e)
		if err != nil {
			return nil, err
		}
		items[id] = &powerItem{id: id, power: p, ts: e.OriginServerTS()}
		parents := map[string]bool{}
		for _, a := range s.authEventIDs(e) {
			if _, inX := x[a]; inX {
				parents[a] = true
				continue
			}
			if !inRegion[a] {
				continue
			}
			if mark[a] == 0 {
				if err := resolveNearest(a); err != nil {
					return nil, err
				}
			}
			for _, n := range nearest[a] {
				parents[n] = true
			}
		}
		delete(parents, id)
		waiting[id] = len(parents)
		for p := range parents {
			unblocks[p] = append(unblocks[p], id)
		}
	}

	var ready powerHeap
	for _, id := range ids {
		if waiting[id] == 0 {
			ready = append(ready, items[id])
		}
	}
	heap.Init(&ready)
	out := make([]string, 0, len(ids))
	for ready.Len() > 0 {
		it := heap.Pop(&ready).(*powerItem)
		out = append(out, it.id)
		for _, c := range unblocks[it.id] {
			waiting[c]--
			if waiting[c] == 0 {
				heap.Push(&ready, items[c])
			}
		}
	}
	if len(out) != len(ids) {
		return nil, fmt.Errorf("%w: auth_events cycle among power events", ErrBadEvent)
	}
	return out, nil
}

type powerItem struct {
	id    string
	power int64
	ts    int64
}

// powerHeap pops the smallest event of the reverse topological power ordering's relation.
type powerHeap []*powerItem

func (h powerHeap) Len() int { return len(h) }
func (h powerHeap) Less(i, j int) bool {
	if h[i].power != h[j].power {
		return h[i].power > h[j].power
	}
	if h[i].ts != h[j].ts {
		return h[i].ts < h[j].ts
	}
	return h[i].id < h[j].id
}
func (h powerHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *powerHeap) Push(v any)   { *h = append(*h, v.(*powerItem)) }
func (h *powerHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// noPosition is the mainline position of an event whose power levels never meet the mainline:
// greater than any real position, so such events sort first.
const noPosition = math.MaxInt

// mainlineOrder sorts ids by mainline ordering based on the power levels event pl (none if
// empty): events whose power levels branch off the mainline earlier come first, then by
// origin_server_ts, then by event id.
func (s *store) mainlineOrder(ids []string, pl string) ([]string, error) {
	if len(ids) == 0 {
		return ids, nil
	}
	// position in the mainline: pl is 0, the power levels it cites 1, and so on.
	position := map[string]int{}
	for cur, i := pl, 0; cur != ""; i++ {
		if _, seen := position[cur]; seen {
			return nil, fmt.Errorf("%w: power levels cycle through %s", ErrBadEvent, cur)
		}
		position[cur] = i
		next, err := s.citedPowerLevels(cur)
		if err != nil {
			return nil, err
		}
		cur = next
	}

	// memo: the mainline position reached from a power levels event (itself included).
	memo := map[string]int{}
	reach := func(start string) (int, error) {
		var path []string
		onPath := map[string]bool{}
		pos := noPosition
		for cur := start; cur != ""; {
			if p, ok := position[cur]; ok {
				pos = p
				break
			}
			if p, ok := memo[cur]; ok {
				pos = p
				break
			}
			if onPath[cur] {
				return 0, fmt.Errorf("%w: power levels cycle through %s", ErrBadEvent, cur)
			}
			onPath[cur] = true
			path = append(path, cur)
			next, err := s.citedPowerLevels(cur)
			if err != nil {
				return 0, err
			}
			cur = next
		}
		for _, p := range path {
			memo[p] = pos
		}
		return pos, nil
	}

	if err := s.load(ids); err != nil {
		return nil, err
	}
	if err := s.loadAuthOf(ids); err != nil {
		return nil, err
	}
	type key struct {
		pos int
		ts  int64
		id  string
	}
	keys := make([]key, len(ids))
	for i, id := range ids {
		first, err := s.citedPowerLevels(id)
		if err != nil {
			return nil, err
		}
		pos := noPosition
		if first != "" {
			if pos, err = reach(first); err != nil {
				return nil, err
			}
		}
		keys[i] = key{pos: pos, ts: s.events[id].OriginServerTS(), id: id}
	}
	slices.SortFunc(keys, func(a, b key) int {
		if c := cmp.Compare(b.pos, a.pos); c != 0 {
			return c
		}
		if c := cmp.Compare(a.ts, b.ts); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.id
	}
	return out, nil
}

// citedPowerLevels is the id of the m.room.power_levels event in the auth events of id, if any.
func (s *store) citedPowerLevels(id string) (string, error) {
	e, err := s.get(id)
	if err != nil {
		return "", err
	}
	auth, err := s.authEvents(e)
	if err != nil {
		return "", err
	}
	if pl := auth[powerLevelsKey]; pl != nil {
		return pl.ID(), nil
	}
	return "", nil
}
