package media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"myelin/mxhttp"
	"myelin/storage"
)

// lookup says how a download finds its media.
type lookup struct {
	origin, mediaID string
	// allowRemote fetches media of other servers that is not cached yet.
	allowRemote bool
	// wait is how long to wait for a pending asynchronous upload.
	wait time.Duration
	// legacy: the deprecated unauthenticated endpoints, which serve only media marked for them.
	legacy bool
}

// resolve finds the media of l: stored here, or fetched from its origin server.
func (s *Service) resolve(ctx context.Context, l lookup) (storage.Media, error) {
	if err := checkMXC(l.origin, l.mediaID); err != nil {
		return storage.Media{}, err
	}
	if l.legacy && !s.cfg.LegacyUnauthenticated {
		return storage.Media{}, mxhttp.NotFound("media is only served through the authenticated endpoints")
	}
	m, err := storage.GetMedia(ctx, s.db, l.origin, l.mediaID)
	if errors.Is(err, storage.ErrNotFound) {
		if l.origin == s.cfg.ServerName || !l.allowRemote || l.legacy {
			return storage.Media{}, mxhttp.NotFound("media not found")
		}
		m, err = s.fetchRemote(ctx, l.origin, l.mediaID)
	}
	if err != nil {
		return storage.Media{}, err
	}
	if m.Pending() {
		if m, err = s.waitForUpload(ctx, m, l.wait); err != nil {
			return storage.Media{}, err
		}
	}
	// Authenticated media (spec v1.11) froze the unauthenticated endpoints: they serve only
	// media marked as having existed before; anything else is as good as absent there.
	if l.legacy && !m.LegacyUnauthenticated {
		return storage.Media{}, mxhttp.NotFound("media is only served through the authenticated endpoints")
	}
	s.touch(ctx, m)
	return m, nil
}

// waitForUpload polls a pending upload until it arrives, expires or wait passes.
func (s *Service) waitForUpload(ctx context.Context, m storage.Media, wait time.Duration) (storage.Media, error) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		if m.UnusedExpiresTS <= s.now().UnixMilli() {
			return storage.Media{}, mxhttp.NotFound("media not found")
		}
		select {
		case <-ctx.Done():
			return storage.Media{}, ctx.Err()
		case <-deadline.C:
			return storage.Media{}, notYetUploaded()
		case <-tick.C:
		}
		next, err := storage.GetMedia(ctx, s.db, m.Origin, m.MediaID)
		if err != nil {
			return storage.Media{}, err
		}
		if !next.Pending() {
			return next, nil
		}
		m = next
	}
}

// download returns the content of l, to be served.
func (s *Service) download(ctx context.Context, l lookup) (*servable, error) {
	m, err := s.resolve(ctx, l)
	if err != nil {
		return nil, err
	}
	return s.openServable(m.ContentHash, m.ContentType, m.UploadName, m.Size)
}

// thumbnail returns a thumbnail of l for a request of width x height by method: a cached one,
// a new one, or the original when it is already no larger than asked. Generated thumbnails are
// still images; an original that moves (animated.go) is served as its own thumbnail only when
// the request sets animated, and is otherwise thumbnailed to its first frame.
func (s *Service) thumbnail(ctx context.Context, l lookup, width, height int, method string, animated bool) (*servable, error) {
	if width < 1 || height < 1 || width > 10000 || height > 10000 {
		return nil, mxhttp.InvalidParam("width and height must be between 1 and 10000")
	}
	if method == "" {
		method = "scale"
	}
	if method != "crop" && method != "scale" {
		return nil, mxhttp.InvalidParam("method must be crop or scale")
	}
	m, err := s.resolve(ctx, l)
	if err != nil {
		return nil, err
	}
	if !canThumbnail(m.ContentType) {
		return nil, cannotThumbnail(fmt.Errorf("content type %q", m.ContentType))
	}
	size, ok := chooseThumbnailSize(s.cfg.ThumbnailSizes, width, height, method)
	if !ok {
		return nil, cannotThumbnail(errors.New("no thumbnail sizes configured"))
	}
	if animated {
		// Ahead of the cache, which holds only still thumbnails.
		if sv, ok, err := s.smallOriginal(m, width, height); ok || err != nil {
			return sv, err
		}
	}
	key := fmt.Sprintf("%s/%s/%dx%d/%s", m.Origin, m.MediaID, size.Width, size.Height, size.Method)
	unlock := s.generating.lock(key)
	defer unlock()
	if t, ok, err := s.storedThumbnail(ctx, m, size); err != nil || ok {
		return t, err
	}

	f, err := s.files.open(m.ContentHash)
	if err != nil {
		return nil, mxhttp.Internal(err)
	}
	defer f.Close()
	info, err := probeImage(f, s.cfg.MaxImagePixels)
	if err != nil {
		return nil, s.thumbnailError(m, err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		return nil, mxhttp.Internal(err)
	}
	if info.Width <= width && info.Height <= height {
		// Already no larger than asked: the original is the best thumbnail (content_repo.md),
		// unless it moves. One whose container cannot be read is taken to move.
		moving, err := isAnimated(f, info.Format)
		if err == nil && !moving {
			return s.openServable(m.ContentHash, m.ContentType, m.UploadName, m.Size)
		}
		if _, err := f.Seek(0, 0); err != nil {
			return nil, mxhttp.Internal(err)
		}
	}
	select {
	case s.decoding <- struct{}{}:
		defer func() { <-s.decoding }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	tctx, cancel := context.WithTimeout(ctx, thumbnailTimeout)
	defer cancel()
	data, contentType, err := makeThumbnail(tctx, f, size, s.cfg.MaxImagePixels)
	if err != nil {
		return nil, s.thumbnailError(m, err)
	}
	staged, err := s.files.stage(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, mxhttp.Internal(err)
	}
	t := storage.MediaThumbnail{
		Origin: m.Origin, MediaID: m.MediaID, Width: size.Width, Height: size.Height, Method: size.Method,
		ContentHash: staged.Hash, ContentType: contentType, Size: staged.Size, CreatedTS: s.now().UnixMilli(),
	}
	if err := s.files.commit(staged, func() error {
		return s.db.WithTx(ctx, func(tx *storage.Tx) error { return tx.InsertMediaThumbnail(ctx, t) })
	}); err != nil {
		return nil, err
	}
	return s.openServable(t.ContentHash, t.ContentType, "thumbnail", t.Size)
}

// smallOriginal returns the original of m when it is an image no larger than width x height,
// moving or not: the answer to a request for an animated thumbnail. ok is false otherwise.
func (s *Service) smallOriginal(m storage.Media, width, height int) (*servable, bool, error) {
	f, err := s.files.open(m.ContentHash)
	if err != nil {
		return nil, false, mxhttp.Internal(err)
	}
	defer f.Close()
	info, err := probeImage(f, s.cfg.MaxImagePixels)
	if err != nil || info.Width > width || info.Height > height {
		return nil, false, nil // the usual path answers, with its own errors
	}
	sv, err := s.openServable(m.ContentHash, m.ContentType, m.UploadName, m.Size)
	return sv, err == nil, err
}

func (s *Service) storedThumbnail(ctx context.Context, m storage.Media, size ThumbnailSize) (*servable, bool, error) {
	ts, err := storage.GetMediaThumbnails(ctx, s.db, m.Origin, m.MediaID)
	if err != nil {
		return nil, false, err
	}
	for _, t := range ts {
		if t.Width == size.Width && t.Height == size.Height && t.Method == size.Method {
			sv, err := s.openServable(t.ContentHash, t.ContentType, "thumbnail", t.Size)
			return sv, err == nil, err
		}
	}
	return nil, false, nil
}

// thumbnailError maps a thumbnailer error to its answer: too large is 413 for local media and
// 502 for remote media, as the spec says.
func (s *Service) thumbnailError(m storage.Media, err error) error {
	switch {
	case errors.Is(err, ErrImageTooLarge) && m.Origin == s.cfg.ServerName:
		return mxhttp.TooLarge("image is too large to thumbnail").Because(err)
	case errors.Is(err, ErrImageTooLarge):
		return remoteTooLarge().Because(err)
	case errors.Is(err, ErrNotThumbnailable):
		return cannotThumbnail(err)
	case errors.Is(err, context.DeadlineExceeded):
		return cannotThumbnail(err)
	default:
		return mxhttp.Internal(err)
	}
}
