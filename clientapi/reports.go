package clientapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/sirupsen/logrus"

	"myelin/mxhttp"
	"myelin/roomserver"
	"myelin/roomserver/event"
	"myelin/storage"
)

// Reporting content (client-server API "Reporting Content"). Reports go to the server's
// administrators: they are stored with the reporter, the target, the reason and the time, are
// listed by `myelin reports`, and are deleted after reports.retention.
//
// Choices within what the spec allows:
//   - an event report needs the reporter to be joined to the event's room, as the spec
//     requires, and answers 404 otherwise, as documented;
//   - a room report is accepted whether or not the reporter is in the room (the spec forbids
//     that restriction) and answers 404 only for a room this server has never seen;
//   - a user report about a local user who does not exist answers 200 and stores nothing, so
//     that reporting cannot be used to learn who has an account here; reports about other
//     servers' users are stored, since this server cannot know.
//   - score, removed from the spec in v1.18, is kept when an older client sends a valid one
//     (an integer from -100 to 0) and ignored otherwise.

// reportBody is the request body of the three report endpoints.
type reportBody struct {
	Reason *string         `json:"reason"`
	Score  json.RawMessage `json:"score"`
}

// readReport reads the body; reasonRequired for room and user reports.
func readReport(r *http.Request, reasonRequired bool) (reason string, score *int64, err error) {
	var b reportBody
	if err := mxhttp.ReadJSON(r, &b); err != nil {
		return "", nil, err
	}
	if b.Reason == nil && reasonRequired {
		return "", nil, mxhttp.MissingParam("reason is required")
	}
	if b.Reason != nil {
		reason = *b.Reason
	}
	var s int64
	if len(b.Score) > 0 && json.Unmarshal(b.Score, &s) == nil && s >= -100 && s <= 0 {
		score = &s
	}
	return reason, score, nil
}

func newReportID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// storeReport rate-limits and stores a report.
func (a *API) storeReport(r *http.Request, who Requester, rep storage.ContentReport) (mxhttp.Response, error) {
	rep.ID, rep.Reporter, rep.ReceivedTS = newReportID(), who.UserID, a.now().UnixMilli()
	if err := a.db.WithTx(r.Context(), func(tx *storage.Tx) error { return tx.InsertContentReport(r.Context(), rep) }); err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	mxhttp.Logger(r.Context()).WithField("report_id", rep.ID).Info("content reported")
	return mxhttp.Empty(), nil
}

// reportEvent is POST /rooms/{roomId}/report/{eventId}.
func (a *API) reportEvent(r *http.Request, who Requester) (mxhttp.Response, error) {
	roomID, vars, err := pathRoomVars(r, "eventId")
	if err != nil {
		return mxhttp.Response{}, err
	}
	if err := a.allowUser("report", who.Localpart); err != nil {
		return mxhttp.Response{}, err
	}
	reason, score, err := readReport(r, false)
	if err != nil {
		return mxhttp.Response{}, err
	}
	notFound := mxhttp.NotFound("the event was not found or you are not joined to the room")
	if a.cfg.Rooms == nil {
		return mxhttp.Response{}, notFound
	}
	membership, err := a.cfg.Rooms.Membership(r.Context(), roomID, who.UserID)
	if err != nil && !errors.Is(err, roomserver.ErrNotFound) {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	if membership != "join" {
		return mxhttp.Response{}, notFound
	}
	ev, err := a.cfg.Rooms.Event(r.Context(), vars[0])
	if errors.Is(err, roomserver.ErrNotFound) || err == nil && ev.RoomID() != roomID {
		return mxhttp.Response{}, notFound
	}
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	return a.storeReport(r, who, storage.ContentReport{
		Kind: storage.ReportEvent, RoomID: roomID, EventID: ev.ID(), TargetUserID: ev.Sender(), Reason: reason, Score: score,
	})
}

// reportRoom is POST /rooms/{roomId}/report.
func (a *API) reportRoom(r *http.Request, who Requester) (mxhttp.Response, error) {
	roomID, err := pathRoomID(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	if err := a.allowUser("report", who.Localpart); err != nil {
		return mxhttp.Response{}, err
	}
	reason, _, err := readReport(r, true)
	if err != nil {
		return mxhttp.Response{}, err
	}
	if a.cfg.Rooms == nil {
		return mxhttp.Response{}, mxhttp.NotFound("the room was not found")
	}
	if _, err := a.cfg.Rooms.RoomVersion(r.Context(), roomID); errors.Is(err, roomserver.ErrNotFound) {
		return mxhttp.Response{}, mxhttp.NotFound("the room was not found")
	} else if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	return a.storeReport(r, who, storage.ContentReport{Kind: storage.ReportRoom, RoomID: roomID, Reason: reason})
}

// reportUser is POST /users/{userId}/report.
func (a *API) reportUser(r *http.Request, who Requester) (mxhttp.Response, error) {
	userID, err := roomPathVar(r, "userId")
	if err != nil {
		return mxhttp.Response{}, err
	}
	u, err := event.ParseUserID(userID)
	if err != nil {
		return mxhttp.Response{}, mxhttp.InvalidParam("%q is not a user id", userID)
	}
	if err := a.allowUser("report", who.Localpart); err != nil {
		return mxhttp.Response{}, err
	}
	reason, _, err := readReport(r, true)
	if err != nil {
		return mxhttp.Response{}, err
	}
	if string(u.Domain()) == a.cfg.ServerName {
		_, err := storage.GetAccount(r.Context(), a.db, u.Local())
		if errors.Is(err, storage.ErrNotFound) {
			return mxhttp.Empty(), nil // not disclosed, not stored
		}
		if err != nil {
			return mxhttp.Response{}, mxhttp.Internal(err)
		}
	}
	return a.storeReport(r, who, storage.ContentReport{Kind: storage.ReportUser, TargetUserID: userID, Reason: reason})
}

// reportRetentionInterval is how often expired reports are looked for.
const reportRetentionInterval = time.Hour

// RunReportRetention deletes content reports older than retention, now and every hour, until
// ctx ends.
func RunReportRetention(ctx context.Context, db *storage.DB, retention time.Duration, log *logrus.Entry) {
	prunePeriodically(ctx, db, reportRetentionInterval, "content reports", log, func(tx *storage.Tx) (int64, error) {
		return tx.DeleteContentReportsBefore(ctx, time.Now().Add(-retention).UnixMilli())
	})
}

// prunePeriodically runs prune in a transaction now and every interval until ctx ends, and
// logs how many of what it deleted.
func prunePeriodically(ctx context.Context, db *storage.DB, interval time.Duration, what string, log *logrus.Entry, prune func(tx *storage.Tx) (int64, error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		var n int64
		err := db.WithTx(ctx, func(tx *storage.Tx) error {
			var err error
			n, err = prune(tx)
			return err
		})
		switch {
		case err != nil && ctx.Err() == nil:
			log.WithError(err).Warn("could not delete expired " + what)
		case n > 0:
			log.WithField("count", n).Info("deleted expired " + what)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
