package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"myelin/roomserver/event"
)

// CreatorLevel is the power level of a room creator in room versions with privileged creators
// (v12+): "infinitely high". Power level values in those versions are canonical JSON integers,
// at most 2**53-1, so this is strictly above any level a power_levels event can give.
const CreatorLevel int64 = math.MaxInt64

// Defaults from the m.room.power_levels schema and the server-server "Definitions".
const (
	defaultUsers         = 0
	defaultEvents        = 0
	defaultState         = 50
	defaultBan           = 50
	defaultKick          = 50
	defaultRedact        = 50
	defaultInvite        = 0
	defaultNotifications = 50 // notifications.room
	// In v1–v11, with no m.room.power_levels event the creator has 100.
	legacyCreatorLevel = 100
)

// ErrInvalidPowerLevels is returned when power levels content breaks the room version's rules.
var ErrInvalidPowerLevels = errors.New("invalid power levels")

// The top-level integer properties of the content, in one array so that the change rule can
// walk them.
const (
	plUsersDefault = iota
	plEventsDefault
	plStateDefault
	plBan
	plRedact
	plKick
	plInvite
	plFields
)

var plFieldNames = [plFields]string{"users_default", "events_default", "state_default", "ban", "redact", "kick", "invite"}

type optLevel struct {
	v  int64
	ok bool // present in the content
}

// plContent is power levels content as written: absent properties stay absent, because the
// change rule compares what was written, not defaults.
type plContent struct {
	top           [plFields]optLevel
	events        map[string]int64
	notifications map[string]int64
	users         map[string]int64
}

// PowerLevels is a room's power levels under its version's rules, with the defaults that apply
// when a property or the whole event is missing.
type PowerLevels struct {
	c        plContent
	hasEvent bool
	// creators: v12+, the create sender and additional_creators (infinite power).
	creators []string
	// creator: v1–v11, the user who gets 100 while the room has no power levels event.
	creator string
}

// NewPowerLevels reads the power levels of a room: pl is its current m.room.power_levels event
// (nil if it has none) and create its m.room.create event, which gives the room version and
// the creators. The create event is required.
func NewPowerLevels(pl, create *event.Event) (PowerLevels, error) {
	if create == nil {
		return PowerLevels{}, fmt.Errorf("%w: no create event", ErrInvalidPowerLevels)
	}
	v := create.Version()
	cc, err := parseCreate(create)
	if err != nil {
		return PowerLevels{}, err
	}
	p := PowerLevels{creator: cc.creator}
	if v.PrivilegedCreators {
		p.creators = cc.creators
	}
	if pl != nil {
		if p.c, err = parsedPowerLevels(pl, v); err != nil {
			return PowerLevels{}, err
		}
		p.hasEvent = true
	}
	return p, nil
}

// IsCreator says whether userID is a room creator with infinite power (v12+ only).
func (p PowerLevels) IsCreator(userID string) bool {
	for _, c := range p.creators {
		if c == userID {
			return true
		}
	}
	return false
}

// UserLevel is the power level of a user; CreatorLevel for the creators of a v12+ room.
func (p PowerLevels) UserLevel(userID string) int64 {
	if p.IsCreator(userID) {
		return CreatorLevel
	}
	if l, ok := p.c.users[userID]; ok {
		return l
	}
	if !p.hasEvent && p.creators == nil && userID == p.creator {
		return legacyCreatorLevel
	}
	return p.c.top[plUsersDefault].or(defaultUsers)
}

// EventLevel is the level required to send an event of type typ: the "events" entry, else
// state_default or events_default.
func (p PowerLevels) EventLevel(typ string, isState bool) int64 {
	if l, ok := p.c.events[typ]; ok {
		return l
	}
	if isState {
		return p.c.top[plStateDefault].or(defaultState)
	}
	return p.c.top[plEventsDefault].or(defaultEvents)
}

func (p PowerLevels) BanLevel() int64    { return p.c.top[plBan].or(defaultBan) }
func (p PowerLevels) KickLevel() int64   { return p.c.top[plKick].or(defaultKick) }
func (p PowerLevels) InviteLevel() int64 { return p.c.top[plInvite].or(defaultInvite) }

// RedactLevel is the level needed to redact other users' events. Auth only uses it in v1 and
// v2; later versions leave it to redaction handling.
func (p PowerLevels) RedactLevel() int64 { return p.c.top[plRedact].or(defaultRedact) }

// NotificationLevel is the level needed to trigger a notification of kind key ("room" for @room).
func (p PowerLevels) NotificationLevel(key string) int64 {
	if l, ok := p.c.notifications[key]; ok {
		return l
	}
	// The spec only defines "room" (default 50); other keys get the same default, the
	// cautious choice for a key nobody configured.
	return defaultNotifications
}

func (o optLevel) or(def int64) int64 {
	if o.ok {
		return o.v
	}
	return def
}

type parsedPL struct {
	c   plContent
	err error
}

// parsedPowerLevels is parsePowerLevels of pl's content, kept on pl. Its maps are shared:
// callers must not modify them.
func parsedPowerLevels(pl *event.Event, v event.RoomVersion) (plContent, error) {
	p := pl.Derived(derivedKey{"power_levels", v.ID}, func() any {
		c, err := parsePowerLevels(pl.Content(), v)
		return parsedPL{c, err}
	}).(parsedPL)
	return p.c, p.err
}

// parsePowerLevels reads content as room version v allows. Every integer property must be a
// level (strings in v1–v9, floats in v1–v5, integers only from v10); "notifications" is only
// checked where auth uses it (v6+), and is read leniently before.
func parsePowerLevels(content json.RawMessage, v event.RoomVersion) (plContent, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(content, &raw); err != nil {
		return plContent{}, fmt.Errorf("%w: content is not an object", ErrInvalidPowerLevels)
	}
	var c plContent
	for i, name := range plFieldNames {
		r, ok := raw[name]
		if !ok {
			continue
		}
		l, err := parseLevel(r, v)
		if err != nil {
			return plContent{}, fmt.Errorf("%w: %s: %w", ErrInvalidPowerLevels, name, err)
		}
		c.top[i] = optLevel{l, true}
	}
	var err error
	if c.events, err = parseLevelMap(raw, "events", v, true); err != nil {
		return plContent{}, err
	}
	if c.notifications, err = parseLevelMap(raw, "notifications", v, v.NotificationsPowerLevels); err != nil {
		return plContent{}, err
	}
	if c.users, err = parseLevelMap(raw, "users", v, true); err != nil {
		return plContent{}, err
	}
	for u := range c.users {
		if !validUserID(u) {
			return plContent{}, fmt.Errorf("%w: users: %q is not a user id", ErrInvalidPowerLevels, u)
		}
	}
	return c, nil
}

// parseLevelMap reads an object of levels. When strict is false, a malformed map or entry is
// skipped instead of failing.
func parseLevelMap(raw map[string]json.RawMessage, name string, v event.RoomVersion, strict bool) (map[string]int64, error) {
	r, ok := raw[name]
	if !ok {
		return nil, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(r, &m); err != nil || m == nil {
		if !strict {
			return nil, nil
		}
		return nil, fmt.Errorf("%w: %s is not an object", ErrInvalidPowerLevels, name)
	}
	out := make(map[string]int64, len(m))
	for k, lr := range m {
		l, err := parseLevel(lr, v)
		if err != nil {
			if !strict {
				continue
			}
			return nil, fmt.Errorf("%w: %s: %q: %w", ErrInvalidPowerLevels, name, k, err)
		}
		out[k] = l
	}
	return out, nil
}

const maxCanonicalInt = 1<<53 - 1

// parseLevel reads one power level value.
func parseLevel(raw json.RawMessage, v event.RoomVersion) (int64, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return 0, errors.New("empty value")
	}
	switch c := raw[0]; {
	case c == '"':
		if v.IntegerPowerLevels {
			return 0, errors.New("string where v10+ needs an integer")
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, err
		}
		return parseStringyLevel(s)
	case c == '-' || isDigit(c):
		s := string(raw)
		if !strings.ContainsAny(s, ".eE") {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("integer %s out of range", s)
			}
			if v.StrictCanonicalJSON && (n > maxCanonicalInt || n < -maxCanonicalInt) {
				return 0, fmt.Errorf("integer %s outside canonical JSON range", s)
			}
			return n, nil
		}
		if v.StrictCanonicalJSON {
			return 0, fmt.Errorf("float %s where an integer is needed", s)
		}
		return parseFloatyLevel(s)
	default:
		return 0, fmt.Errorf("%.20s is not an integer", raw)
	}
}

// parseStringyLevel follows "m.room.power_levels events accept values as strings" (v1–v9):
// optional surrounding whitespace, one optional sign, base 10 digits with any leading zeroes.
func parseStringyLevel(s string) (int64, error) {
	t := strings.TrimSpace(s)
	neg := false
	if t != "" && (t[0] == '+' || t[0] == '-') {
		neg = t[0] == '-'
		t = t[1:]
	}
	if t == "" {
		return 0, fmt.Errorf("%q is not an integer", s)
	}
	for i := 0; i < len(t); i++ {
		if !isDigit(t[i]) {
			return 0, fmt.Errorf("%q is not an integer", s)
		}
	}
	t = strings.TrimLeft(t, "0")
	if t == "" {
		return 0, nil
	}
	if neg {
		t = "-" + t
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		// Python (Synapse) has unbounded ints; a level beyond int64 has no meaning here, so
		// the event is refused rather than clamped.
		return 0, fmt.Errorf("%q out of range", s)
	}
	return n, nil
}

// parseFloatyLevel follows "m.room.power_levels events accept values as floats" (v1–v5):
// exponent applied, then truncated toward zero; values beyond a double are rejected.
func parseFloatyLevel(s string) (int64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && (math.IsInf(f, 0) || !errors.Is(err, strconv.ErrRange)) {
		return 0, fmt.Errorf("%s is not a finite double", s)
	}
	f = math.Trunc(f)
	if f >= math.MaxInt64 || f < math.MinInt64 {
		return 0, fmt.Errorf("%s out of range", s)
	}
	return int64(f), nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
