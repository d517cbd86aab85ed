package federation

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"myelin/roomserver"
	"myelin/roomserver/event"
)

// The history side of Outbound: backfill, and the state at an event, which the room server
// asks for to read a room's past and to bridge gaps in its DAG.

var _ roomserver.RemoteHistory = (*Outbound)(nil)

// maxHistoryAnswer bounds the PDUs taken from one /backfill, /state or /event_auth answer,
// whatever the other server sends.
const maxHistoryAnswer = 5000

// Backfill is GET /_matrix/federation/v1/backfill/{roomId}?v=...&limit=.
func (o *Outbound) Backfill(ctx context.Context, server, roomID string, v event.RoomVersion, from []string, limit int) ([]*event.Event, error) {
	q := url.Values{"v": from, "limit": {strconv.Itoa(limit)}}
	var resp struct {
		PDUs []json.RawMessage `json:"pdus"`
	}
	uri := "/_matrix/federation/v1/backfill/" + url.PathEscape(roomID) + "?" + q.Encode()
	if err := o.client.Do(ctx, server, http.MethodGet, uri, nil, &resp); err != nil {
		return nil, remoteError(err)
	}
	return o.checkRoomPDUs(ctx, server, roomID, resp.PDUs[:min(len(resp.PDUs), limit, maxHistoryAnswer)], v), nil
}

// StateIDs is GET /_matrix/federation/v1/state_ids/{roomId}?event_id=.
func (o *Outbound) StateIDs(ctx context.Context, server, roomID, eventID string) (state, authChain []string, err error) {
	var resp struct {
		PDUIDs       []string `json:"pdu_ids"`
		AuthChainIDs []string `json:"auth_chain_ids"`
	}
	uri := "/_matrix/federation/v1/state_ids/" + url.PathEscape(roomID) + "?" + url.Values{"event_id": {eventID}}.Encode()
	if err := o.client.Do(ctx, server, http.MethodGet, uri, nil, &resp); err != nil {
		return nil, nil, remoteError(err)
	}
	if len(resp.PDUIDs)+len(resp.AuthChainIDs) > maxHistoryAnswer {
		return nil, nil, fmt.Errorf("%s: the state at %s is larger than %d events", server, eventID, maxHistoryAnswer)
	}
	return resp.PDUIDs, resp.AuthChainIDs, nil
}

// State is GET /_matrix/federation/v1/state/{roomId}?event_id=.
func (o *Outbound) State(ctx context.Context, server, roomID, eventID string, v event.RoomVersion) (state, authChain []*event.Event, err error) {
	var resp struct {
		PDUs      []json.RawMessage `json:"pdus"`
		AuthChain []json.RawMessage `json:"auth_chain"`
	}
	uri := "/_matrix/federation/v1/state/" + url.PathEscape(roomID) + "?" + url.Values{"event_id": {eventID}}.Encode()
	if err := o.client.Do(ctx, server, http.MethodGet, uri, nil, &resp); err != nil {
		return nil, nil, remoteError(err)
	}
	if len(resp.PDUs)+len(resp.AuthChain) > maxHistoryAnswer {
		return nil, nil, fmt.Errorf("%s: the state at %s is larger than %d events", server, eventID, maxHistoryAnswer)
	}
	return o.checkRoomPDUs(ctx, server, roomID, resp.PDUs, v), o.checkRoomPDUs(ctx, server, roomID, resp.AuthChain, v), nil
}

// Event is GET /_matrix/federation/v1/event/{eventId}.
func (o *Outbound) Event(ctx context.Context, server, eventID string, v event.RoomVersion) (*event.Event, error) {
	var resp struct {
		PDUs []json.RawMessage `json:"pdus"`
	}
	if err := o.client.Do(ctx, server, http.MethodGet, "/_matrix/federation/v1/event/"+url.PathEscape(eventID), nil, &resp); err != nil {
		return nil, remoteError(err)
	}
	if len(resp.PDUs) != 1 {
		return nil, fmt.Errorf("%s: /event answered %d PDUs", server, len(resp.PDUs))
	}
	ev, err := o.checker.checkPDU(ctx, resp.PDUs[0], v)
	if err != nil {
		return nil, err
	}
	if ev.ID() != eventID {
		return nil, fmt.Errorf("%s: /event %s answered event %s", server, eventID, ev.ID())
	}
	return ev, nil
}

// EventAuth is GET /_matrix/federation/v1/event_auth/{roomId}/{eventId}.
func (o *Outbound) EventAuth(ctx context.Context, server, roomID, eventID string, v event.RoomVersion) ([]*event.Event, error) {
	var resp struct {
		AuthChain []json.RawMessage `json:"auth_chain"`
	}
	uri := "/_matrix/federation/v1/event_auth/" + url.PathEscape(roomID) + "/" + url.PathEscape(eventID)
	if err := o.client.Do(ctx, server, http.MethodGet, uri, nil, &resp); err != nil {
		return nil, remoteError(err)
	}
	return o.checkRoomPDUs(ctx, server, roomID, resp.AuthChain[:min(len(resp.AuthChain), maxHistoryAnswer)], v), nil
}

// checkRoomPDUs is checkAll for PDUs that must belong to roomID: others are dropped.
func (o *Outbound) checkRoomPDUs(ctx context.Context, server, roomID string, raws []json.RawMessage, v event.RoomVersion) []*event.Event {
	out := o.checkAll(ctx, server, raws, v)
	kept := out[:0]
	for _, ev := range out {
		if ev.RoomID() == roomID {
			kept = append(kept, ev)
		}
	}
	return kept
}
