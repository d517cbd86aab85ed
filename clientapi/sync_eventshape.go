package clientapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// The event_format and event_fields of a sync filter (client-server API, "Filtering").
//
// event_format "federation" returns each room event (timeline, state, state_after) as the PDU
// the server stores, signatures and hashes included and redacted if it was, with its
// event_id (which room versions 3 and later leave out of the PDU) and with the unsigned
// object this server adds for clients (age, transaction_id, prev_content, redacted_because,
// itself in federation form, m.relations). Whatever unsigned data the PDU arrived with is
// not passed on. Ephemeral events and account data are not PDUs and keep their form.
//
// event_fields keeps, of every event the filter governs (timeline, state and state_after of
// joined and left rooms, ephemeral events, room and global account data, presence), only the
// listed dot-separated paths, in their nesting. Invite and knock stripped state and to-device
// messages are governed by no part of the filter and are sent whole, as the spec's "a server
// may include more fields than were requested" allows.
//
// Both are rare, so they are applied to the finished response rather than threaded through
// every section: the response is turned into a JSON tree and the events in it are rewritten.

// shapeSyncResponse applies the filter's event_format and event_fields to resp; it returns
// resp itself when the filter asks for neither.
func shapeSyncResponse(resp *syncResponse, f Filter) (any, error) {
	federation := f.EventFormat == "federation"
	if !federation && f.EventFields == nil {
		return resp, nil
	}
	raw, err := json.Marshal(resp)
	if err != nil {
		return nil, fmt.Errorf("shaping sync response: %w", err)
	}
	tree, err := decodeTree(raw)
	if err != nil {
		return nil, fmt.Errorf("shaping sync response: %w", err)
	}
	s := eventShaper{federation: federation}
	if f.EventFields != nil {
		s.fields = parseFieldPaths(f.EventFields)
		s.onlyFields = true
	}
	top := tree.(map[string]any)
	rooms, _ := top["rooms"].(map[string]any)
	join, _ := rooms["join"].(map[string]any)
	for roomID, jr := range resp.Rooms.Join {
		node, _ := join[roomID].(map[string]any)
		s.roomEvents(node, "timeline", jr.Timeline.Events)
		if jr.State != nil {
			s.roomEvents(node, "state", jr.State.Events)
		}
		if jr.StateAfter != nil {
			s.roomEvents(node, "state_after", jr.StateAfter.Events)
		}
		s.basicEvents(node, "ephemeral")
		s.basicEvents(node, "account_data")
	}
	leave, _ := rooms["leave"].(map[string]any)
	for roomID, lr := range resp.Rooms.Leave {
		node, _ := leave[roomID].(map[string]any)
		s.roomEvents(node, "timeline", lr.Timeline.Events)
		if lr.State != nil {
			s.roomEvents(node, "state", lr.State.Events)
		}
		if lr.StateAfter != nil {
			s.roomEvents(node, "state_after", lr.StateAfter.Events)
		}
		s.basicEvents(node, "account_data")
	}
	s.basicEvents(top, "account_data")
	s.basicEvents(top, "presence")
	return top, nil
}

// decodeTree decodes JSON into maps and slices, numbers kept exact.
func decodeTree(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// eventShaper rewrites the events of a response tree.
type eventShaper struct {
	federation bool
	onlyFields bool
	fields     [][]string
}

// roomEvents rewrites node[section].events, whose i-th entry was marshalled from evs[i].
func (s eventShaper) roomEvents(node map[string]any, section string, evs []ClientEvent) {
	list := eventsOf(node, section)
	for i, v := range list {
		obj, ok := v.(map[string]any)
		if !ok || i >= len(evs) {
			continue
		}
		if s.federation {
			obj = federationEvent(evs[i], obj)
		}
		if s.onlyFields {
			obj = selectFields(obj, s.fields)
		}
		list[i] = obj
	}
}

// basicEvents applies event_fields to node[section].events.
func (s eventShaper) basicEvents(node map[string]any, section string) {
	if !s.onlyFields {
		return
	}
	list := eventsOf(node, section)
	for i, v := range list {
		if obj, ok := v.(map[string]any); ok {
			list[i] = selectFields(obj, s.fields)
		}
	}
}

func eventsOf(node map[string]any, section string) []any {
	sec, _ := node[section].(map[string]any)
	list, _ := sec["events"].([]any)
	return list
}

// federationEvent is ce as its PDU, with its event_id and the unsigned object of client (the
// tree ce was marshalled to). An event without a PDU to show keeps its client form.
func federationEvent(ce ClientEvent, client map[string]any) map[string]any {
	if ce.source == nil {
		return client
	}
	tree, err := decodeTree(ce.source.JSON())
	pdu, ok := tree.(map[string]any)
	if err != nil || !ok {
		return client
	}
	pdu["event_id"] = ce.EventID
	delete(pdu, "unsigned")
	if unsigned, ok := client["unsigned"].(map[string]any); ok {
		if because, ok := unsigned["redacted_because"].(map[string]any); ok && ce.Unsigned != nil && ce.Unsigned.RedactedBecause != nil {
			unsigned["redacted_because"] = federationEvent(*ce.Unsigned.RedactedBecause, because)
		}
		pdu["unsigned"] = unsigned
	}
	return pdu
}

// parseFieldPaths splits each dot-separated property path (appendix "Dot-separated property
// paths"): a backslash escapes a dot or a backslash; any other backslash is literal. Paths
// are returned shortest first, and a path under another one listed is dropped, since the
// shorter one keeps it already.
func parseFieldPaths(paths []string) [][]string {
	var out [][]string
	for _, p := range paths {
		var parts []string
		var cur strings.Builder
		for i := 0; i < len(p); i++ {
			c := p[i]
			switch {
			case c == '\\' && i+1 < len(p) && (p[i+1] == '.' || p[i+1] == '\\'):
				cur.WriteByte(p[i+1])
				i++
			case c == '.':
				parts = append(parts, cur.String())
				cur.Reset()
			default:
				cur.WriteByte(c)
			}
		}
		out = append(out, append(parts, cur.String()))
	}
	slices.SortStableFunc(out, func(a, b []string) int { return len(a) - len(b) })
	kept := out[:0]
	for _, p := range out {
		covered := slices.ContainsFunc(kept, func(k []string) bool { return len(k) <= len(p) && slices.Equal(k, p[:len(k)]) })
		if !covered {
			kept = append(kept, p)
		}
	}
	return kept
}

// selectFields keeps of obj only the values at the given paths, with the objects around them.
// No path is under another (parseFieldPaths), so the objects made here are never the
// source's own.
func selectFields(obj map[string]any, paths [][]string) map[string]any {
	out := map[string]any{}
	for _, path := range paths {
		var v any = obj
		found := true
		for _, k := range path {
			m, ok := v.(map[string]any)
			if !ok {
				found = false
				break
			}
			if v, ok = m[k]; !ok {
				found = false
				break
			}
		}
		if !found {
			continue
		}
		dst := out
		for _, k := range path[:len(path)-1] {
			next, ok := dst[k].(map[string]any)
			if !ok {
				next = map[string]any{}
				dst[k] = next
			}
			dst = next
		}
		dst[path[len(path)-1]] = v
	}
	return out
}
