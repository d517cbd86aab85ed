package stateres

import (
	"fmt"

	"myelin/roomserver/event"
)

// WalkAuthChain computes what Loader.AuthChain returns by following auth_events links, fetching
// events through events one generation at a time. It serves loaders without an auth chain index
// (tests, tools); a storage layer with one should answer from it instead. An event that cannot be
// fetched is an error wrapping ErrMissingEvent: a partial chain would silently change the result.
func WalkAuthChain(events func(ids []string) (map[string]*event.Event, error), ids []string) (map[string]struct{}, error) {
	chain := map[string]struct{}{}
	fetched := map[string]bool{}
	frontier := dedupe(ids)
	for len(frontier) > 0 {
		got, err := events(frontier)
		if err != nil {
			return nil, fmt.Errorf("stateres: walking auth chain: %w", err)
		}
		var next []string
		for _, id := range frontier {
			fetched[id] = true
			e, ok := got[id]
			if !ok || e == nil {
				return nil, fmt.Errorf("%w: %s", ErrMissingEvent, id)
			}
			for _, a := range e.AuthEventIDs() {
				if _, ok := chain[a]; ok {
					continue
				}
				chain[a] = struct{}{}
				if !fetched[a] {
					next = append(next, a)
				}
			}
		}
		frontier = next
	}
	return chain, nil
}

func dedupe(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// authChainOf asks the loader for the auth chain of ids; asking about nothing costs nothing.
func (s *store) authChainOf(ids []string) (map[string]struct{}, error) {
	if len(ids) == 0 {
		return map[string]struct{}{}, nil
	}
	chain, err := s.l.AuthChain(ids)
	if err != nil {
		return nil, fmt.Errorf("stateres: loading auth chain: %w", err)
	}
	return chain, nil
}

// conflictedSubgraph is the v2.1 conflicted state subgraph: every event on an auth_events path
// from one conflicted event to another, endpoints included. Those are the events that both
// descend from a conflicted event (are in its auth chain, or are it) and lead to one.
func (s *store) conflictedSubgraph(conflicted map[string]struct{}) (map[string]struct{}, error) {
	ids := setKeys(conflicted)
	ancestors, err := s.authChainOf(ids)
	if err != nil {
		return nil, err
	}
	region := make([]string, 0, len(ancestors)+len(ids))
	region = append(region, ids...)
	for id := range ancestors {
		if _, ok := conflicted[id]; !ok {
			region = append(region, id)
		}
	}
	if err := s.load(region); err != nil {
		return nil, fmt.Errorf("conflicted subgraph: %w", err)
	}
	inRegion := make(map[string]bool, len(region))
	for _, id := range region {
		inRegion[id] = true
	}
	// Walk from the conflicted events towards the events that cite them, inside the region:
	// what is reached leads to a conflicted event and descends from one.
	citedBy := map[string][]string{}
	for _, id := range region {
		for _, a := range s.authEventIDs(s.events[id]) {
			if inRegion[a] {
				citedBy[a] = append(citedBy[a], id)
			}
		}
	}
	sub := make(map[string]struct{}, len(ids))
	queue := append([]string(nil), ids...)
	for _, id := range ids {
		sub[id] = struct{}{}
	}
	for len(queue) > 0 {
		id := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		for _, c := range citedBy[id] {
			if _, ok := sub[c]; !ok {
				sub[c] = struct{}{}
				queue = append(queue, c)
			}
		}
	}
	return sub, nil
}

func setKeys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
