// Package export gathers everything this server holds about one local user into an archive the
// user can take away: their account, profile, devices, settings, rooms and messages, receipts,
// reports, end-to-end encryption keys and backups exactly as uploaded, and their media. It is
// the "export" of the server's promise that each user may see, export and erase what it holds.
//
// What the archive holds about anyone else is only what the user could already see: their own
// events, the membership events that concern them, and (with IncludeRoomHistory) the events of
// their rooms that history visibility lets them read. It never holds a password hash, an access,
// refresh, login or OpenID token or its hash, another device's to-device messages, or one-time
// keys (only their counts).
//
// The archive (FormatVersion 1) is a zip file, or a directory when the operator asks for one,
// holding these files, all JSON but the media:
//
//	manifest.json            format, format_version, server_name, user_id, export time, and every
//	                         other file with its size and SHA-256
//	account.json             creation time, admin, has_password, deactivated, locked, suspended,
//	                         consent (each policy version accepted at registration, and when)
//	profile.json             display name, avatar, custom profile fields
//	devices.json             device ids, display names, creation and last-seen times (and IP
//	                         only where the server stores it)
//	account_data.json        {"global": {type: content}, "rooms": {room_id: {type: content}}}
//	push_rules.json          the user's own rules and their changes to the default ones
//	pushers.json, filters.json, aliases.json, receipts.json, reports.json
//	openid_tokens.json       how many OpenID tokens exist and when they expire
//	rooms.json               every room the user is or was in, with its file:
//	rooms/NNNN.json          {"room_id", "room_version", "membership", "membership_events" (the
//	                         user's m.room.member events, whoever sent them), "sent_events" (every
//	                         other event the user sent), "history" (IncludeRoomHistory only)}, events
//	                         in the client format of /messages, in stream order
//	invites.json             pending invites to rooms of other servers
//	e2e/devices.json         identity keys as uploaded; counts of one-time keys and to-device messages
//	e2e/cross_signing.json   cross-signing keys as uploaded and the signatures the user made
//	e2e/key_backups.json     each backup version with auth_data and its encrypted room keys, in the
//	                         shape of GET /room_keys/keys
//	media.json, media/ID     the user's uploads: metadata, and each file's content
//
// An exporter writes it through a Sink, so that the same code fills a zip file or a directory
// (archive.go).
package export

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"myelin/roomserver/event"
	"myelin/storage"
)

// FormatVersion is the version of the archive layout; it grows when a file changes shape in a
// way that a reader of the previous version would misread.
const FormatVersion = 1

// Format names the kind of archive in its manifest.
const Format = "myelin.user_export"

// ErrNoSuchUser: the user id is not one of this server's accounts.
var ErrNoSuchUser = errors.New("export: no such local user")

// Rooms is what the exporter needs of the room server: history visibility and redactions, so
// that events read as /messages would show them.
type Rooms interface {
	// VisibleEvents returns the events among evs that userID may see.
	VisibleEvents(ctx context.Context, userID string, evs []*event.Event) ([]*event.Event, error)
	// RedactionsFor returns the redaction of each redacted event among eventIDs.
	RedactionsFor(ctx context.Context, eventIDs []string) (map[string]*event.Event, error)
	// UnappliedRedactions reports the redactions among eventIDs that have not taken effect.
	UnappliedRedactions(ctx context.Context, eventIDs []string) (map[string]bool, error)
}

// Options configure an export.
type Options struct {
	ServerName string
	DB         *storage.DB
	Rooms      Rooms
	// OpenMedia opens the stored content of a media by its SHA-256; nil: media files are left
	// out (their metadata stays).
	OpenMedia func(hash string) (io.ReadCloser, error)
	// IncludeRoomHistory adds to each room the events of others that the user may see, by
	// history visibility. Without it a room holds only the user's own events and the membership
	// events that concern them.
	IncludeRoomHistory bool
	// Now is the clock; time.Now if nil.
	Now func() time.Time
}

// Sink receives the files of an archive one after another: a call to Create ends the previous
// file. Names are slash-separated paths relative to the archive's root.
type Sink interface {
	Create(name string) (io.Writer, error)
}

// Manifest is manifest.json: what the archive is and which files it holds.
type Manifest struct {
	Format             string         `json:"format"`
	FormatVersion      int            `json:"format_version"`
	ServerName         string         `json:"server_name"`
	UserID             string         `json:"user_id"`
	ExportedTS         int64          `json:"exported_ts"`
	ExportedAt         string         `json:"exported_at"`
	IncludeRoomHistory bool           `json:"include_room_history"`
	Files              []ManifestFile `json:"files"`
}

// ManifestFile is one file of the archive, with its size and SHA-256 so that a reader can check
// that nothing was lost or changed.
type ManifestFile struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
}

// exporter is one export in progress.
type exporter struct {
	opts      Options
	userID    string
	localpart string
	now       time.Time
	sink      Sink
	manifest  Manifest
}

// Export writes everything the server holds about the local user userID to sink, manifest.json
// last, and returns the manifest. ErrNoSuchUser if userID is not a local account.
func Export(ctx context.Context, opts Options, userID string, sink Sink) (Manifest, error) {
	u, err := event.ParseUserID(userID)
	if err != nil || string(u.Domain()) != opts.ServerName {
		return Manifest{}, fmt.Errorf("%w: %s is not a user of %s", ErrNoSuchUser, userID, opts.ServerName)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	now := opts.Now()
	e := &exporter{
		opts: opts, userID: u.String(), localpart: u.Local(), now: now, sink: sink,
		manifest: Manifest{
			Format: Format, FormatVersion: FormatVersion, ServerName: opts.ServerName, UserID: u.String(),
			ExportedTS: now.UnixMilli(), ExportedAt: now.UTC().Format(time.RFC3339),
			IncludeRoomHistory: opts.IncludeRoomHistory,
		},
	}
	if _, err := storage.GetAccount(ctx, opts.DB, e.localpart); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return Manifest{}, fmt.Errorf("%w: %s", ErrNoSuchUser, userID)
		}
		return Manifest{}, fmt.Errorf("export: reading the account: %w", err)
	}
	for _, part := range []func(context.Context) error{
		e.writeAccount, e.writeProfile, e.writeDevices, e.writeAccountData, e.writePushRules,
		e.writePushers, e.writeFilters, e.writeRooms, e.writeInvites, e.writeAliases,
		e.writeReceipts, e.writeReports, e.writeOpenID, e.writeE2EDevices, e.writeCrossSigning,
		e.writeKeyBackups, e.writeMedia,
	} {
		if err := part(ctx); err != nil {
			return Manifest{}, err
		}
	}
	// The manifest lists every other file; it is written last and is not listed itself.
	w, err := sink.Create("manifest.json")
	if err != nil {
		return Manifest{}, err
	}
	if err := encodeJSON(w, e.manifest); err != nil {
		return Manifest{}, fmt.Errorf("export: writing manifest.json: %w", err)
	}
	return e.manifest, nil
}

// file writes one file of the archive through fn and records it in the manifest.
func (e *exporter) file(name, description string, fn func(w io.Writer) error) error {
	w, err := e.sink.Create(name)
	if err != nil {
		return fmt.Errorf("export: creating %s: %w", name, err)
	}
	cw := &countingWriter{w: w, h: sha256.New()}
	if err := fn(cw); err != nil {
		return fmt.Errorf("export: writing %s: %w", name, err)
	}
	e.manifest.Files = append(e.manifest.Files, ManifestFile{
		Name: name, Description: description, Size: cw.n, SHA256: hex.EncodeToString(cw.h.Sum(nil)),
	})
	return nil
}

// writeJSON writes v as one indented JSON file.
func (e *exporter) writeJSON(name, description string, v any) error {
	return e.file(name, description, func(w io.Writer) error { return encodeJSON(w, v) })
}

func encodeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// countingWriter hashes and counts what passes through it, for the manifest.
type countingWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	return n, err
}
