package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"myelin/config"
	"myelin/storage"
)

// runReports lists the content reports users sent to the administrators (POST /report),
// oldest first. Reports older than reports.retention have already been deleted.
func runReports(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("reports", stderr)
	path := fs.String("config", "myelin.yaml", "the configuration file")
	since := fs.Duration("since", 0, "only reports received within this long, e.g. 24h (0: all)")
	limit := fs.Int("limit", 0, "at most this many reports (0: all)")
	asJSON := fs.Bool("json", false, "one JSON object per line instead of a table")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *since < 0 || *limit < 0 {
		fmt.Fprintln(stderr, "--since and --limit must not be negative")
		fs.Usage()
		return errUsage
	}
	return withDatabase(ctx, *path, func(_ *config.Config, db *storage.DB) error {
		var sinceTS int64
		if *since > 0 {
			sinceTS = time.Now().Add(-*since).UnixMilli()
		}
		reports, err := storage.ListContentReports(ctx, db, sinceTS, *limit)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeReportsJSON(stdout, reports)
		}
		return writeReportsTable(stdout, reports)
	})
}

// reportJSON is one report as `myelin reports --json` prints it.
type reportJSON struct {
	ID         string `json:"id"`
	Received   string `json:"received"`
	Kind       string `json:"kind"`
	Reporter   string `json:"reporter"`
	RoomID     string `json:"room_id,omitempty"`
	EventID    string `json:"event_id,omitempty"`
	UserID     string `json:"user_id,omitempty"`
	Reason     string `json:"reason"`
	Score      *int64 `json:"score,omitempty"`
	ReceivedTS int64  `json:"received_ts"`
}

func writeReportsJSON(w io.Writer, reports []storage.ContentReport) error {
	enc := json.NewEncoder(w)
	for _, r := range reports {
		if err := enc.Encode(reportJSON{
			ID: r.ID, Received: time.UnixMilli(r.ReceivedTS).UTC().Format(time.RFC3339), Kind: r.Kind,
			Reporter: r.Reporter, RoomID: r.RoomID, EventID: r.EventID, UserID: r.TargetUserID,
			Reason: r.Reason, Score: r.Score, ReceivedTS: r.ReceivedTS,
		}); err != nil {
			return err
		}
	}
	return nil
}

func writeReportsTable(w io.Writer, reports []storage.ContentReport) error {
	if len(reports) == 0 {
		_, err := fmt.Fprintln(w, "no reports")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RECEIVED\tKIND\tREPORTER\tTARGET\tREASON")
	for _, r := range reports {
		var target []string
		for _, s := range []string{r.TargetUserID, r.RoomID, r.EventID} {
			if s != "" {
				target = append(target, s)
			}
		}
		// The reason is the reporter's free text: quoted, so that it cannot forge table rows or
		// terminal escapes.
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", time.UnixMilli(r.ReceivedTS).UTC().Format(time.RFC3339),
			r.Kind, r.Reporter, strings.Join(target, " "), strconv.QuoteToASCII(r.Reason))
	}
	return tw.Flush()
}
