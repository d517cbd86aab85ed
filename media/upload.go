package media

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"myelin/mxhttp"
	"myelin/storage"
)

// upload is one upload request's content.
type upload struct {
	uploader    string
	contentType string
	filename    string
	body        io.Reader
	// length is the declared Content-Length, or -1.
	length int64
}

// stageUpload checks the declared size and copies the body to a staged file within the limit.
func (s *Service) stageUpload(u upload) (*stagedFile, error) {
	if u.length > s.cfg.MaxUploadSize {
		return nil, mxhttp.TooLarge("cannot upload files larger than %d bytes", s.cfg.MaxUploadSize)
	}
	f, err := s.files.stage(u.body, s.cfg.MaxUploadSize)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.Is(err, errTooLarge) || errors.As(err, &mbe) {
			return nil, mxhttp.TooLarge("cannot upload files larger than %d bytes", s.cfg.MaxUploadSize)
		}
		return nil, (&mxhttp.Error{Status: http.StatusBadRequest, Code: "M_UNKNOWN", Message: "could not read the upload"}).Because(err)
	}
	return f, nil
}

// checkQuota refuses an upload of size bytes that would take the uploader over the quota.
func (s *Service) checkQuota(ctx context.Context, r storage.Reader, uploader string, size int64) error {
	if s.cfg.UserQuota <= 0 {
		return nil
	}
	used, err := storage.MediaUsage(ctx, r, uploader)
	if err != nil {
		return err
	}
	if used+size > s.cfg.UserQuota {
		return mxhttp.Forbidden("media quota exceeded: %d of %d bytes used", used, s.cfg.UserQuota)
	}
	return nil
}

// Upload stores new content and returns its mxc:// URI.
func (s *Service) upload(ctx context.Context, u upload) (string, error) {
	if err := s.checkQuota(ctx, s.db, u.uploader, 0); err != nil {
		return "", err
	}
	f, err := s.stageUpload(u)
	if err != nil {
		return "", err
	}
	now := s.now().UnixMilli()
	m := storage.Media{
		Origin: s.cfg.ServerName, MediaID: newMediaID(), ContentHash: f.Hash,
		ContentType: normaliseContentType(u.contentType), UploadName: sanitiseFilename(u.filename),
		Size: f.Size, Uploader: u.uploader, CreatedTS: now, UploadedTS: now, LastAccessTS: now,
	}
	err = s.files.commit(f, func() error {
		return s.db.WithTx(ctx, func(tx *storage.Tx) error {
			if err := s.checkQuota(ctx, tx, u.uploader, f.Size); err != nil {
				return err
			}
			return tx.InsertMedia(ctx, m)
		})
	})
	if err != nil {
		return "", err
	}
	return mxcURI(m.Origin, m.MediaID), nil
}

// create reserves a media id for an asynchronous upload.
func (s *Service) create(ctx context.Context, uploader string) (string, int64, error) {
	now := s.now()
	m := storage.Media{
		Origin: s.cfg.ServerName, MediaID: newMediaID(), Uploader: uploader, CreatedTS: now.UnixMilli(),
		UnusedExpiresTS: now.Add(s.cfg.PendingLifetime).UnixMilli(), LastAccessTS: now.UnixMilli(),
	}
	err := s.db.WithTx(ctx, func(tx *storage.Tx) error {
		n, err := storage.CountPendingMedia(ctx, tx, uploader, now.UnixMilli())
		if err != nil {
			return err
		}
		if n >= s.cfg.MaxPendingUploads {
			e := mxhttp.LimitExceeded(time.Minute)
			e.Message = "too many pending uploads: upload to the media ids already created first"
			return e
		}
		return tx.InsertMedia(ctx, m)
	})
	if err != nil {
		return "", 0, err
	}
	return mxcURI(m.Origin, m.MediaID), m.UnusedExpiresTS, nil
}

// uploadTo uploads content to a media id reserved by create.
func (s *Service) uploadTo(ctx context.Context, origin, mediaID string, u upload) error {
	if err := checkMXC(origin, mediaID); err != nil {
		return err
	}
	if origin != s.cfg.ServerName {
		return mxhttp.NotFound("unknown media id")
	}
	m, err := storage.GetMedia(ctx, s.db, origin, mediaID)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return mxhttp.NotFound("unknown media id")
	case err != nil:
		return err
	case m.Uploader != u.uploader:
		return mxhttp.Forbidden("this media id was created by another user")
	case !m.Pending():
		return cannotOverwrite()
	case m.UnusedExpiresTS <= s.now().UnixMilli():
		return mxhttp.NotFound("the media id has expired")
	}
	f, err := s.stageUpload(u)
	if err != nil {
		return err
	}
	now := s.now().UnixMilli()
	m.ContentHash, m.ContentType, m.UploadName = f.Hash, normaliseContentType(u.contentType), sanitiseFilename(u.filename)
	m.Size, m.UploadedTS = f.Size, now
	return s.files.commit(f, func() error {
		return s.db.WithTx(ctx, func(tx *storage.Tx) error {
			if err := s.checkQuota(ctx, tx, u.uploader, f.Size); err != nil {
				return err
			}
			err := tx.CompletePendingMedia(ctx, m)
			if errors.Is(err, storage.ErrConflict) {
				return cannotOverwrite()
			}
			return err
		})
	})
}
