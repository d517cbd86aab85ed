package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"myelin/config"
	"myelin/export"
	"myelin/keys"
	"myelin/media"
	"myelin/roomserver"
	"myelin/storage"
)

// runExportUser writes everything the server holds about one local user into an archive the
// operator hands to them: a zip file, or a directory when --out ends with '/'. It reads the
// database and the media store only, so it may run while the server does (SQLite in WAL mode
// lets readers work beside the writer; PostgreSQL anyway); the archive is then a snapshot that
// may miss what changes during the export.
func runExportUser(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("export-user", stderr)
	path := fs.String("config", "myelin.yaml", "the configuration file")
	user := fs.String("user", "", "the local user to export, e.g. @alice:example.org (required)")
	out := fs.String("out", "", "the archive to write: a .zip file, or a directory when it ends with '/' (required)")
	history := fs.Bool("include-room-history", false, "also export the events of others the user may see in their rooms")
	force := fs.Bool("force", false, "replace an existing archive")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *user == "" || *out == "" {
		fmt.Fprintln(stderr, "--user and --out are required")
		fs.Usage()
		return errUsage
	}
	return withDatabase(ctx, *path, func(cfg *config.Config, db *storage.DB) error {
		// The room server is used for reads only (history visibility, redactions): it never
		// signs, so it gets no key.
		rooms := roomserver.New(db, cfg.ServerName, keys.SigningKey{}, roomserver.Options{})
		mediaDir := filepath.Join(cfg.DataDir, "media")
		opts := export.Options{
			ServerName: cfg.ServerName, DB: db, Rooms: rooms, IncludeRoomHistory: *history,
			OpenMedia: func(hash string) (io.ReadCloser, error) { return media.OpenStoredContent(mediaDir, hash) },
		}
		now := time.Now()
		opts.Now = func() time.Time { return now }
		var manifest export.Manifest
		err := export.WriteArchive(*out, *force, now, func(sink export.Sink) error {
			var err error
			manifest, err = export.Export(ctx, opts, *user, sink)
			return err
		})
		if errors.Is(err, export.ErrNoSuchUser) {
			return fmt.Errorf("%s is not an account of %s", *user, cfg.ServerName)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "exported %s to %s (%d files)\n", manifest.UserID, *out, len(manifest.Files)+1)
		return nil
	})
}
