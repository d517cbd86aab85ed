package event

import "fmt"

// A RoomVersion is a table of behaviours: every difference between the room versions is a field
// here, so that protocol code asks "does this version do X" instead of comparing version strings.
type RoomVersion struct {
	ID     string
	Stable bool

	// Format is the shape of the PDU on the wire.
	Format Format
	// EventIDs says how event ids are made.
	EventIDs EventIDFormat
	// StateRes is the state resolution algorithm.
	StateRes StateResAlgorithm
	// Redaction is the redaction algorithm.
	Redaction RedactionAlgorithm

	// EnforceKeyValidity: a signature only counts if made while the key was valid (v5+).
	EnforceKeyValidity bool
	// StrictCanonicalJSON: integers in [-(2**53)+1, 2**53-1], no floats, no NaN (v6+).
	StrictCanonicalJSON bool
	// SpecialCasedAliases: m.room.aliases has its own auth rule (v1–v5).
	SpecialCasedAliases bool
	// NotificationsPowerLevels: the power levels "notifications" key is checked by auth (v6+).
	NotificationsPowerLevels bool
	// Knocking: the "knock" join rule and membership (v7+).
	Knocking bool
	// RestrictedJoins: the "restricted" join rule with join_authorised_via_users_server (v8+).
	RestrictedJoins bool
	// KnockRestricted: the "knock_restricted" join rule (v10+).
	KnockRestricted bool
	// IntegerPowerLevels: power level values must be JSON integers, not strings (v10+).
	IntegerPowerLevels bool
	// CreatorIsSender: m.room.create has no "creator"; the sender is the creator (v11+).
	CreatorIsSender bool
	// RedactsInContent: m.room.redaction carries "redacts" in content, not at top level (v11+).
	RedactsInContent bool
	// RoomIDFromCreateEvent: the room id is "!" + the create event's reference hash, the create
	// event has no room_id and is never listed in auth_events (v12+).
	RoomIDFromCreateEvent bool
	// PrivilegedCreators: the creators (create sender + additional_creators) have infinite power
	// and cannot appear in m.room.power_levels users (v12+).
	PrivilegedCreators bool
}

// Format is the shape of a PDU.
type Format int

const (
	// FormatV1: the PDU carries event_id, and prev_events/auth_events are [id, {hashes}] pairs.
	FormatV1 Format = iota + 1
	// FormatV2: no event_id in the PDU; prev_events/auth_events are lists of event ids (v3+).
	FormatV2
)

// EventIDFormat says how an event id is made.
type EventIDFormat int

const (
	// IDServerMinted: "$opaque:server", chosen by the origin server (v1, v2).
	IDServerMinted EventIDFormat = iota + 1
	// IDBase64: "$" + standard unpadded base64 of the reference hash (v3).
	IDBase64
	// IDURLSafeBase64: "$" + URL-safe unpadded base64 of the reference hash (v4+).
	IDURLSafeBase64
)

// StateResAlgorithm is a state resolution algorithm.
type StateResAlgorithm int

const (
	StateResV1   StateResAlgorithm = iota + 1 // room version 1
	StateResV2                                // room versions 2–11
	StateResV2_1                              // room version 12
)

// RedactionAlgorithm is a set of redaction rules.
type RedactionAlgorithm int

const (
	RedactionV1  RedactionAlgorithm = iota + 1 // v1–v5
	RedactionV6                                // v6, v7: m.room.aliases keeps nothing
	RedactionV8                                // v8: join_rules keeps "allow"
	RedactionV9                                // v9, v10: m.room.member keeps join_authorised_via_users_server
	RedactionV11                               // v11, v12
)

// DefaultRoomVersion is the version of newly created rooms unless configured otherwise.
const DefaultRoomVersion = "12"

var roomVersions = func() map[string]RoomVersion {
	v1 := RoomVersion{
		ID: "1", Stable: true, Format: FormatV1, EventIDs: IDServerMinted,
		StateRes: StateResV1, Redaction: RedactionV1, SpecialCasedAliases: true,
	}
	v2 := v1
	v2.ID, v2.StateRes = "2", StateResV2
	v3 := v2
	v3.ID, v3.Format, v3.EventIDs = "3", FormatV2, IDBase64
	v4 := v3
	v4.ID, v4.EventIDs = "4", IDURLSafeBase64
	v5 := v4
	v5.ID, v5.EnforceKeyValidity = "5", true
	v6 := v5
	v6.ID, v6.StrictCanonicalJSON, v6.SpecialCasedAliases, v6.NotificationsPowerLevels = "6", true, false, true
	v6.Redaction = RedactionV6
	v7 := v6
	v7.ID, v7.Knocking = "7", true
	v8 := v7
	v8.ID, v8.RestrictedJoins, v8.Redaction = "8", true, RedactionV8
	v9 := v8
	v9.ID, v9.Redaction = "9", RedactionV9
	v10 := v9
	v10.ID, v10.KnockRestricted, v10.IntegerPowerLevels = "10", true, true
	v11 := v10
	v11.ID, v11.CreatorIsSender, v11.RedactsInContent, v11.Redaction = "11", true, true, RedactionV11
	v12 := v11
	v12.ID, v12.StateRes, v12.RoomIDFromCreateEvent, v12.PrivilegedCreators = "12", StateResV2_1, true, true
	m := map[string]RoomVersion{}
	for _, v := range []RoomVersion{v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12} {
		m[v.ID] = v
	}
	return m
}()

// ErrUnsupportedRoomVersion is returned for a room version this server does not know.
type ErrUnsupportedRoomVersion string

func (e ErrUnsupportedRoomVersion) Error() string {
	return fmt.Sprintf("unsupported room version %q", string(e))
}

// Version returns the behaviours of a room version.
func Version(id string) (RoomVersion, error) {
	v, ok := roomVersions[id]
	if !ok {
		return RoomVersion{}, ErrUnsupportedRoomVersion(id)
	}
	return v, nil
}

// MustVersion is Version for ids known to be valid (constants, tests).
func MustVersion(id string) RoomVersion {
	v, err := Version(id)
	if err != nil {
		panic(err)
	}
	return v
}

// Versions returns every supported room version id, in order.
func Versions() []string {
	return []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"}
}
