// Package e2e is the end-to-end encryption key store: device identity keys, one-time and
// fallback keys, cross-signing keys and signatures, server-side key backups, the send-to-device
// queue and device list change tracking.
//
// The server never reads what it stores here. It checks the structure of what clients upload,
// and the signatures that tie keys to their owners, then stores keys, signatures and
// ciphertexts exactly as uploaded (in canonical JSON, which leaves every signature valid) and
// hands them out again. Nothing from these objects is ever logged.
//
// Choices the spec leaves open:
//   - Device keys must carry a valid self-signature by the device's own ed25519 key; an upload
//     without one is refused with M_INVALID_PARAM (as Dendrite does; Synapse stores it anyway).
//     A forged or corrupt device key would only be rejected later by every client.
//   - One-time keys are checked for shape only: their signatures are the claiming client's to
//     verify, and checking them here would add nothing.
//   - A device's display name (unsigned.device_display_name) is shown to local users who query
//     its keys, as Synapse does; remote servers will not get it.
//   - Messages to a device that does not exist are dropped rather than queued forever.
package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"myelin/storage"
)

// RoomMembership is what the store needs from the room server: who shares a room with a user.
type RoomMembership interface {
	// SharedRoomUsers returns the users, local and remote, with whom userID shares at least one
	// room in which both are joined.
	SharedRoomUsers(ctx context.Context, userID string) ([]string, error)
}

// Federation is what the store needs to reach remote users.
type Federation interface {
	// SendToDevice sends send-to-device messages to the users of one remote server. messages maps
	// user id to device id (or "*") to content.
	SendToDevice(ctx context.Context, destination, sender, eventType, messageID string, messages map[string]map[string]json.RawMessage) error
	// QueryKeys, ClaimKeys and UserDevices ask a remote server for its users' keys
	// (/user/keys/query, /user/keys/claim, /user/devices); federation.go uses them.
	QueryKeys(ctx context.Context, server string, want map[string][]string) (QueryResult, error)
	ClaimKeys(ctx context.Context, server string, want map[string]map[string]string) (ClaimResult, error)
	UserDevices(ctx context.Context, server, userID string) (UserDevices, error)
	// SendEDU queues an EDU (device list and signing key updates) for remote servers.
	SendEDU(ctx context.Context, destinations []string, eduType string, content any) error
}

// Notifier is told when a stream moves, so that waiting /sync requests wake up.
type Notifier interface {
	ToDeviceQueued(userID string, deviceIDs []string, pos int64)
	DeviceListsChanged(userIDs []string, pos int64)
}

// Options are the store's collaborators; each may be nil.
type Options struct {
	// Rooms answers who shares a room with whom. Nil: only a user's own changes are reported.
	Rooms RoomMembership
	// Federation delivers to remote users. Nil: messages to remote users are dropped.
	Federation Federation
	// Notifier wakes /sync. Nil: nobody is told.
	Notifier Notifier
	// Log is for what fails after a request has been answered. Nil: the standard logger.
	Log *logrus.Entry
	// ToDeviceTTL is how long a send-to-device message waits for its device (e2ee.to_device_ttl).
	// Zero: DefaultToDeviceTTL.
	ToDeviceTTL time.Duration
	// Now is the clock, for tests. Nil: time.Now.
	Now func() time.Time
}

// Store is the end-to-end encryption key store of one homeserver.
type Store struct {
	db         *storage.DB
	serverName string
	opts       Options
	now        func() time.Time
	// announceMu serialises announcing device list changes to other servers (federation.go).
	announceMu sync.Mutex
}

// New returns the key store of serverName's users on db.
func New(db *storage.DB, serverName string, opts Options) *Store {
	if opts.Log == nil {
		opts.Log = logrus.NewEntry(logrus.StandardLogger())
	}
	opts.Log = opts.Log.WithField("component", "e2e")
	if opts.ToDeviceTTL <= 0 {
		opts.ToDeviceTTL = DefaultToDeviceTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Store{db: db, serverName: serverName, opts: opts, now: opts.Now}
}

// Kinds of failure, for errors.Is; each maps to one Matrix errcode.
var (
	ErrInvalidParam     = errors.New("M_INVALID_PARAM")     // 400
	ErrMissingParam     = errors.New("M_MISSING_PARAM")     // 400
	ErrInvalidSignature = errors.New("M_INVALID_SIGNATURE") // 400
	ErrForbidden        = errors.New("M_FORBIDDEN")         // 403
	ErrNotFound         = errors.New("M_NOT_FOUND")         // 404
	// ErrAuthRequired: the request replaces existing cross-signing keys and must first pass
	// User-Interactive Authentication.
	ErrAuthRequired = errors.New("user-interactive authentication required")
)

// Error is a failure the client may be told about: Msg never holds keys or ciphertext.
type Error struct {
	Kind error
	Msg  string
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Kind }

func fail(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// WrongBackupVersionError: keys were sent to a backup that is not the current one.
type WrongBackupVersionError struct {
	CurrentVersion string
}

func (e *WrongBackupVersionError) Error() string { return "wrong backup version" }

// serverOf returns the server part of a user id; ok is false if userID is not one.
func serverOf(userID string) (string, bool) {
	if !strings.HasPrefix(userID, "@") {
		return "", false
	}
	_, server, ok := strings.Cut(userID, ":")
	if !ok || server == "" || len(userID) > 255 {
		return "", false
	}
	return server, true
}

// localpart returns the localpart of a user of this server; ok is false for anyone else.
func (s *Store) localpart(userID string) (string, bool) {
	server, ok := serverOf(userID)
	if !ok || server != s.serverName {
		return "", false
	}
	lp, _, _ := strings.Cut(userID[1:], ":")
	return lp, lp != ""
}

// markChanged records, inside tx, that users' device lists changed, and returns a function that
// tells the notifier once tx has committed.
func (s *Store) markChanged(ctx context.Context, tx *storage.Tx, userIDs ...string) (func(), error) {
	pos, err := tx.MarkDeviceListsChanged(ctx, userIDs...)
	if err != nil {
		return nil, err
	}
	return func() {
		if s.opts.Notifier != nil {
			s.opts.Notifier.DeviceListsChanged(userIDs, pos)
		}
		s.announceDeviceChanges(context.WithoutCancel(ctx), userIDs)
	}, nil
}
