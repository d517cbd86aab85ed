package roomserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"myelin/roomserver/auth"
	"myelin/roomserver/event"
	"myelin/storage"
)

// Presets of /createRoom.
const (
	PresetPrivateChat        = "private_chat"
	PresetTrustedPrivateChat = "trusted_private_chat"
	PresetPublicChat         = "public_chat"
)

// StateEvent is a state event of a request: initial_state of /createRoom, state copied by an
// upgrade.
type StateEvent struct {
	Type     string
	StateKey string
	Content  json.RawMessage
}

// CreateRoomRequest is /createRoom with its parameters parsed. Creator is a local user; Alias,
// if set, is the full canonical alias ("#name:server") the caller already reserved.
type CreateRoomRequest struct {
	Creator                   string
	RoomVersion               string // the server's default if empty
	Preset                    string // chosen from Visibility if empty
	Visibility                string // "public" or "private"
	Name                      string
	Topic                     string
	Alias                     string
	Invite                    []string
	IsDirect                  bool
	InitialState              []StateEvent
	CreationContent           json.RawMessage
	PowerLevelContentOverride json.RawMessage
}

// encryptionAlgorithm is what new encrypted rooms use: the only room algorithm of the spec.
const encryptionAlgorithm = "m.megolm.v1.aes-sha2"

// CreateRoom creates a room with the event sequence of /createRoom and returns its id. Every
// event is authorised before any is stored, and all are stored in one transaction: a refused
// event (in initial_state, say) leaves no room behind.
func (s *Server) CreateRoom(ctx context.Context, req CreateRoomRequest) (string, error) {
	if !s.isLocalUser(req.Creator) {
		return "", fmt.Errorf("%w: creator %q is not a user of this server", ErrInvalid, req.Creator)
	}
	versionID := req.RoomVersion
	if versionID == "" {
		versionID = s.opts.DefaultRoomVersion
	}
	v, err := event.Version(versionID)
	if err != nil {
		return "", err
	}
	preset := req.Preset
	if preset == "" {
		preset = PresetPrivateChat
		if req.Visibility == "public" {
			preset = PresetPublicChat
		}
	}
	if preset != PresetPrivateChat && preset != PresetTrustedPrivateChat && preset != PresetPublicChat {
		return "", fmt.Errorf("%w: unknown preset %q", ErrInvalid, preset)
	}
	for _, u := range req.Invite {
		if _, err := event.ParseUserID(u); err != nil {
			return "", fmt.Errorf("%w: invitee: %w", ErrInvalid, err)
		}
	}

	createTS := s.opts.Now().UnixMilli()
	for attempt := 0; ; attempt++ {
		w, remoteInvitees, err := s.buildRoom(ctx, req, v, preset, createTS+int64(attempt))
		if err != nil {
			return "", err
		}
		rs := w.rs
		id, err := s.commitNewRoom(ctx, w)
		if errors.Is(err, errRoomIDTaken) && v.RoomIDFromCreateEvent && attempt+1 < maxCreateAttempts {
			// From room version 12 the room id is the create event's hash: the same creator
			// with the same creation content in the same millisecond makes the same room id.
			// Another millisecond makes another one.
			continue
		}
		if err != nil {
			return "", err
		}
		for _, u := range remoteInvitees {
			var extra map[string]any
			if req.IsDirect {
				extra = map[string]any{"is_direct": true}
			}
			// The room exists now whatever happens: an invitee whose server cannot be reached or
			// refuses is simply not invited, as the creator can see in the room's members.
			_, _ = s.inviteRemote(ctx, rs.id, req.Creator, u, "", extra)
		}
		return id, nil
	}
}

// maxCreateAttempts bounds the retries of CreateRoom on a room id collision. Each retry moves
// the create event one millisecond on, so only a burst of that many identical creations in a
// row could exhaust it.
const maxCreateAttempts = 16

// errRoomIDTaken is the room id of a room being created colliding with an existing room's.
var errRoomIDTaken = errors.New("roomserver: room id taken")

// commitNewRoom stores a room built by buildRoom, unless its id is taken: in this process
// (a loaded room) or in storage.
func (s *Server) commitNewRoom(ctx context.Context, w *roomWork) (string, error) {
	rs := w.rs
	slot, unlock, err := s.lockRoom(ctx, rs.id)
	if err != nil {
		return "", err
	}
	defer unlock()
	if slot.state != nil {
		return "", fmt.Errorf("%w: %s", errRoomIDTaken, rs.id)
	}
	if _, err := storage.GetRoom(ctx, s.db, rs.id); err == nil {
		return "", fmt.Errorf("%w: %s", errRoomIDTaken, rs.id)
	} else if !isNotFound(err) {
		return "", err
	}
	if err := s.commit(ctx, w); err != nil {
		return "", err
	}
	slot.state = rs
	return rs.id, nil
}

// buildRoom builds, signs and authorises the events of a new room without storing them,
// with createTS as the create event's origin_server_ts. It returns the staged room and the
// invitees of other servers, who are invited once the room exists.
func (s *Server) buildRoom(ctx context.Context, req CreateRoomRequest, v event.RoomVersion, preset string, createTS int64) (*roomWork, []string, error) {
	rs := &roomState{version: v, state: map[event.StateTuple]*eventRef{}}
	if !v.RoomIDFromCreateEvent {
		rs.id = "!" + randomID(18) + ":" + s.serverName
	}
	w := newWork(rs)
	send := func(typ, stateKey string, content any) error {
		raw, err := contentJSON(content)
		if err != nil {
			return err
		}
		p := event.Proto{Type: typ, StateKey: &stateKey, Sender: req.Creator, Content: raw}
		if typ == auth.TypeCreate {
			p.OriginServerTS = createTS
		}
		_, err = s.addLocal(ctx, w, p)
		return err
	}

	// 1. m.room.create
	create, err := objectOf(req.CreationContent)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: creation_content: %w", ErrInvalid, err)
	}
	create["room_version"] = v.ID
	if v.CreatorIsSender {
		delete(create, "creator")
	} else {
		create["creator"] = req.Creator
	}
	trustedInvitees := preset == PresetTrustedPrivateChat
	if v.PrivilegedCreators && trustedInvitees {
		var extra []string
		if raw, ok := create["additional_creators"]; ok {
			b, _ := json.Marshal(raw)
			if json.Unmarshal(b, &extra) != nil {
				return nil, nil, fmt.Errorf("%w: additional_creators is not a list of user ids", ErrInvalid)
			}
		}
		for _, u := range req.Invite {
			if !slices.Contains(extra, u) && u != req.Creator {
				extra = append(extra, u)
			}
		}
		if len(extra) > 0 {
			create["additional_creators"] = extra
		}
	}
	if err := send(auth.TypeCreate, "", create); err != nil {
		return nil, nil, err
	}
	// 2. the creator joins
	creatorJoin, err := s.withProfile(ctx, req.Creator, map[string]any{"membership": "join"})
	if err != nil {
		return nil, nil, err
	}
	if err := send(auth.TypeMember, req.Creator, creatorJoin); err != nil {
		return nil, nil, err
	}
	// 3. power levels
	pl := defaultPowerLevels(v, req.Creator)
	if trustedInvitees && !v.PrivilegedCreators {
		users := pl["users"].(map[string]any)
		for _, u := range req.Invite {
			users[u] = 100
		}
	}
	if preset != PresetPublicChat {
		pl["invite"] = 0
	}
	override, err := objectOf(req.PowerLevelContentOverride)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: power_level_content_override: %w", ErrInvalid, err)
	}
	for k, val := range override {
		pl[k] = val
	}
	if err := send(auth.TypePowerLevels, "", pl); err != nil {
		return nil, nil, err
	}
	// 4. canonical alias
	if req.Alias != "" {
		if err := send("m.room.canonical_alias", "", map[string]any{"alias": req.Alias}); err != nil {
			return nil, nil, err
		}
	}
	// 5. the preset's state, unless initial_state sets the same
	inInitial := func(typ string) bool {
		return slices.ContainsFunc(req.InitialState, func(e StateEvent) bool { return e.Type == typ && e.StateKey == "" })
	}
	joinRule, guestAccess := "invite", "can_join"
	if preset == PresetPublicChat {
		joinRule, guestAccess = "public", "forbidden"
	}
	for _, e := range []StateEvent{
		{Type: auth.TypeJoinRules, Content: mustJSON(map[string]any{"join_rule": joinRule})},
		{Type: "m.room.history_visibility", Content: mustJSON(map[string]any{"history_visibility": "shared"})},
		{Type: "m.room.guest_access", Content: mustJSON(map[string]any{"guest_access": guestAccess})},
	} {
		if !inInitial(e.Type) {
			if err := send(e.Type, "", e.Content); err != nil {
				return nil, nil, err
			}
		}
	}
	if s.opts.EncryptPrivateRooms && preset != PresetPublicChat && !inInitial("m.room.encryption") {
		if err := send("m.room.encryption", "", map[string]any{"algorithm": encryptionAlgorithm}); err != nil {
			return nil, nil, err
		}
	}
	// 6. initial_state
	for _, e := range req.InitialState {
		if e.Type == auth.TypeCreate || e.Type == auth.TypeMember {
			// Neither can be set this way: the create event exists, and memberships need
			// their own senders.
			return nil, nil, fmt.Errorf("%w: initial_state may not hold %s", ErrInvalid, e.Type)
		}
		if err := send(e.Type, e.StateKey, e.Content); err != nil {
			return nil, nil, err
		}
	}
	// 7. name and topic
	if req.Name != "" {
		if err := send("m.room.name", "", map[string]any{"name": req.Name}); err != nil {
			return nil, nil, err
		}
	}
	if req.Topic != "" {
		topic := map[string]any{
			"topic":   req.Topic,
			"m.topic": map[string]any{"m.text": []any{map[string]any{"body": req.Topic, "mimetype": "text/plain"}}},
		}
		if err := send("m.room.topic", "", topic); err != nil {
			return nil, nil, err
		}
	}
	// 8. invites. Users of other servers are invited once the room exists: their servers
	// must countersign the invite first (inviteRemote, perform_remote.go).
	var remoteInvitees []string
	for _, u := range req.Invite {
		if s.opts.Federation != nil && !s.isLocalUser(u) {
			remoteInvitees = append(remoteInvitees, u)
			continue
		}
		content := map[string]any{"membership": "invite"}
		if req.IsDirect {
			content["is_direct"] = true
		}
		if err := send(auth.TypeMember, u, content); err != nil {
			return nil, nil, err
		}
	}

	return w, remoteInvitees, nil
}

// defaultPowerLevels are the power levels of a new room, as Synapse and Dendrite give them.
// From room version 12 the creators have infinite power and may not be listed in users, and
// the tombstone level is above state_default as /createRoom asks.
func defaultPowerLevels(v event.RoomVersion, creator string) map[string]any {
	users := map[string]any{}
	tombstone := 100
	if v.PrivilegedCreators {
		tombstone = 150
	} else {
		users[creator] = 100
	}
	return map[string]any{
		"users":          users,
		"users_default":  0,
		"events_default": 0,
		"state_default":  50,
		"ban":            50,
		"kick":           50,
		"redact":         50,
		"invite":         50,
		"notifications":  map[string]any{"room": 50},
		"events": map[string]any{
			"m.room.name":               50,
			"m.room.avatar":             50,
			"m.room.topic":              50,
			"m.room.canonical_alias":    50,
			"m.room.power_levels":       100,
			"m.room.history_visibility": 100,
			"m.room.encryption":         100,
			"m.room.server_acl":         100,
			"m.room.tombstone":          tombstone,
		},
	}
}

// contentJSON accepts content as raw JSON or as a value to marshal.
func contentJSON(content any) (json.RawMessage, error) {
	if raw, ok := content.(json.RawMessage); ok {
		if len(raw) == 0 {
			return json.RawMessage("{}"), nil
		}
		return raw, nil
	}
	b, err := json.Marshal(content)
	if err != nil {
		return nil, fmt.Errorf("%w: content: %w", ErrInvalid, err)
	}
	return b, nil
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// objectOf decodes an optional JSON object; numbers stay json.Number so they round-trip.
func objectOf(raw json.RawMessage) (map[string]any, error) {
	m := map[string]any{}
	if len(raw) == 0 {
		return m, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("not an object")
	}
	return m, nil
}

const idAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read does not fail on supported platforms
	for i := range b {
		b[i] = idAlphabet[int(b[i])%len(idAlphabet)]
	}
	return string(b)
}
