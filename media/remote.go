package media

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"

	"myelin/mxhttp"
	"myelin/storage"
)

// remoteContent is the body of a remote media answer and what it says about itself.
type remoteContent struct {
	body        io.Reader
	contentType string
	filename    string
}

// fetchRemote fetches media from its origin server and caches it. Only one fetch of a media
// runs at a time; the others wait and find it cached.
func (s *Service) fetchRemote(ctx context.Context, origin, mediaID string) (storage.Media, error) {
	if s.cfg.Remote == nil {
		return storage.Media{}, mxhttp.NotFound("media not found")
	}
	unlock := s.fetching.lock(origin + "/" + mediaID)
	defer unlock()
	if m, err := storage.GetMedia(ctx, s.db, origin, mediaID); !errors.Is(err, storage.ErrNotFound) {
		return m, err
	}
	ctx, cancel := context.WithTimeout(ctx, remoteFetchTimeout)
	defer cancel()

	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	content, err := s.requestRemote(ctx, origin, mediaID, &closers)
	if err != nil {
		return storage.Media{}, err
	}
	f, err := s.files.stage(content.body, s.cfg.MaxUploadSize)
	if errors.Is(err, errTooLarge) {
		return storage.Media{}, remoteTooLarge()
	}
	if err != nil {
		return storage.Media{}, remoteFailed(err)
	}
	now := s.now().UnixMilli()
	m := storage.Media{
		Origin: origin, MediaID: mediaID, ContentHash: f.Hash, ContentType: normaliseContentType(content.contentType),
		UploadName: sanitiseFilename(content.filename), Size: f.Size, CreatedTS: now, UploadedTS: now, LastAccessTS: now,
	}
	if err := s.files.commit(f, func() error {
		return s.db.WithTx(ctx, func(tx *storage.Tx) error { return tx.InsertMedia(ctx, m) })
	}); err != nil {
		if errors.Is(err, storage.ErrConflict) {
			// Another process sharing the database cached it meanwhile.
			return storage.GetMedia(ctx, s.db, origin, mediaID)
		}
		return storage.Media{}, err
	}
	return m, nil
}

// requestRemote asks the origin for the media through the federation media endpoint (spec
// v1.11) and, when the origin does not know that endpoint, through the deprecated
// /_matrix/media/v3/download with allow_remote=false, so that a misdirected request cannot loop.
func (s *Service) requestRemote(ctx context.Context, origin, mediaID string, closers *[]io.Closer) (remoteContent, error) {
	resp, err := s.cfg.Remote.GetMedia(ctx, origin, "/_matrix/federation/v1/media/download/"+url.PathEscape(mediaID)+"?timeout_ms=20000")
	if err != nil {
		return remoteContent{}, remoteFailed(err)
	}
	*closers = append(*closers, resp.Body)
	if resp.StatusCode == http.StatusOK {
		return s.readMultipart(ctx, resp, closers)
	}
	if code := remoteError(resp); !unknownEndpoint(resp.StatusCode, code) {
		return remoteContent{}, remoteStatusError(resp.StatusCode, code)
	}
	resp, err = s.cfg.Remote.GetMedia(ctx, origin, "/_matrix/media/v3/download/"+url.PathEscape(origin)+"/"+
		url.PathEscape(mediaID)+"?allow_remote=false&timeout_ms=20000")
	if err != nil {
		return remoteContent{}, remoteFailed(err)
	}
	*closers = append(*closers, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return remoteContent{}, remoteStatusError(resp.StatusCode, remoteError(resp))
	}
	return remoteContent{body: resp.Body, contentType: resp.Header.Get("Content-Type"), filename: dispositionFilename(resp.Header.Get("Content-Disposition"))}, nil
}

// readMultipart reads the multipart/mixed answer of the federation media endpoints: a JSON
// metadata part, then the content itself or a Location to fetch it from.
func (s *Service) readMultipart(ctx context.Context, resp *http.Response, closers *[]io.Closer) (remoteContent, error) {
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" || params["boundary"] == "" {
		return remoteContent{}, remoteFailed(fmt.Errorf("answer is %q, not multipart/mixed", resp.Header.Get("Content-Type")))
	}
	mr := multipart.NewReader(resp.Body, params["boundary"])
	meta, err := mr.NextPart()
	if err != nil {
		return remoteContent{}, remoteFailed(fmt.Errorf("reading the metadata part: %w", err))
	}
	var metadata map[string]any
	if err := json.NewDecoder(io.LimitReader(meta, 64<<10)).Decode(&metadata); err != nil {
		return remoteContent{}, remoteFailed(fmt.Errorf("metadata part is not a JSON object: %w", err))
	}
	part, err := mr.NextPart()
	if err != nil {
		return remoteContent{}, remoteFailed(fmt.Errorf("reading the content part: %w", err))
	}
	if loc := part.Header.Get("Location"); loc != "" {
		u, err := url.Parse(loc)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") {
			return remoteContent{}, remoteFailed(fmt.Errorf("bad Location %q", loc))
		}
		// The redirect target is fetched like any URL: every connection is checked against the
		// private address rule, redirects included.
		r, err := s.cfg.Remote.GetURL(ctx, u.String())
		if err != nil {
			return remoteContent{}, remoteFailed(err)
		}
		*closers = append(*closers, r.Body)
		if r.StatusCode != http.StatusOK {
			return remoteContent{}, remoteStatusError(r.StatusCode, "")
		}
		return remoteContent{body: r.Body, contentType: r.Header.Get("Content-Type"), filename: dispositionFilename(r.Header.Get("Content-Disposition"))}, nil
	}
	return remoteContent{body: part, contentType: part.Header.Get("Content-Type"), filename: dispositionFilename(part.Header.Get("Content-Disposition"))}, nil
}

// remoteError is the Matrix error body of an answer, if it has one.
func remoteError(resp *http.Response) string {
	var e struct {
		Code string `json:"errcode"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&e)
	return e.Code
}

// unknownEndpoint: the answer says the server does not have the endpoint (servers before
// v1.11), so the legacy endpoint is worth trying.
func unknownEndpoint(status int, code string) bool {
	switch status {
	case http.StatusNotFound:
		return code == "M_UNRECOGNIZED" || code == ""
	case http.StatusBadRequest, http.StatusMethodNotAllowed, http.StatusNotImplemented:
		return code == "M_UNRECOGNIZED" || code == ""
	}
	return false
}

// remoteStatusError maps a remote failure to what the client sees.
func remoteStatusError(status int, code string) error {
	switch {
	case status == http.StatusNotFound:
		return mxhttp.NotFound("media not found")
	case code == "M_NOT_YET_UPLOADED":
		return notYetUploaded()
	case code == "M_TOO_LARGE":
		return remoteTooLarge()
	default:
		return remoteFailed(fmt.Errorf("origin answered HTTP %d %s", status, code))
	}
}

// dispositionFilename is the file name of a Content-Disposition header, "" if none.
func dispositionFilename(v string) string {
	if v == "" {
		return ""
	}
	_, params, err := mime.ParseMediaType(v)
	if err != nil {
		return ""
	}
	return params["filename"]
}
