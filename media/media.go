// Package media is the content repository: uploads (direct and asynchronous), authenticated
// downloads and thumbnails for clients, the federation media endpoints, and remote media
// fetched from other servers and cached. Content is stored on disk addressed by its SHA-256;
// what is known about each mxc:// URI is in the database (storage/media.go).
//
// Safety: everything served carries a sandboxing Content-Security-Policy and nosniff, and is an
// attachment unless its type is one that browsers only render as media; thumbnails decode only
// images whose declared size is within a pixel bound; remote fetches go through a Remote whose
// connections refuse private addresses unless the operator allowed them.
package media

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"time"

	"github.com/sirupsen/logrus"

	"myelin/mxhttp"
	"myelin/storage"
)

// Defaults for Config fields left zero.
const (
	DefaultMaxUploadSize       = 50 << 20
	DefaultMaxPendingUploads   = 10
	DefaultPendingLifetime     = 24 * time.Hour
	DefaultRemoteCacheLifetime = 30 * 24 * time.Hour
	// maxWait bounds timeout_ms, how long a download waits for a pending upload.
	maxWait     = 60 * time.Second
	defaultWait = 20 * time.Second
	// remoteFetchTimeout bounds a whole remote fetch, connection to last byte.
	remoteFetchTimeout = 2 * time.Minute
	// thumbnailTimeout bounds decoding one image for a thumbnail.
	thumbnailTimeout = 20 * time.Second
	// accessGranularity bounds how often reading a media writes its last access time.
	accessGranularity = time.Hour
	cleanupInterval   = time.Hour
)

// Remote reaches other servers for their media. Both methods return any HTTP answer (the caller
// reads its status and closes its body); their connections must refuse private addresses unless
// the operator allowed them, checked after DNS resolution for every connection.
type Remote interface {
	// GetMedia sends a GET signed as this server to destination; uri is the path and query.
	GetMedia(ctx context.Context, destination, uri string) (*http.Response, error)
	// GetURL fetches a URL with an unsigned GET, following a bounded number of redirects.
	GetURL(ctx context.Context, url string) (*http.Response, error)
}

// Config is what the media repository needs.
type Config struct {
	ServerName string
	// Dir holds the files: <data_dir>/media.
	Dir string
	DB  *storage.DB
	// MaxUploadSize bounds uploads and remote media, in bytes.
	MaxUploadSize int64
	// UserQuota bounds the bytes one user may have uploaded; 0: no quota.
	UserQuota int64
	// MaxPendingUploads bounds the asynchronous uploads one user may have created and not
	// uploaded yet.
	MaxPendingUploads int
	// PendingLifetime is how long a created media id waits for its upload.
	PendingLifetime time.Duration
	// RemoteCacheLifetime: cached remote media unused for this long is deleted.
	RemoteCacheLifetime time.Duration
	ThumbnailSizes      []ThumbnailSize
	// MaxImagePixels bounds the images thumbnailed.
	MaxImagePixels int64
	// LegacyUnauthenticated lets the deprecated /_matrix/media/v3/download and /thumbnail serve
	// media marked legacy_unauthenticated (media from before authenticated media); when false
	// they serve nothing. New uploads are never marked, so they are never served there.
	LegacyUnauthenticated bool
	// URLPreviews turns on /preview_url (preview.go).
	URLPreviews bool
	// URLPreviewDeniedHosts are host patterns (path.Match globs) never previewed.
	URLPreviewDeniedHosts []string
	// URLPreviewCacheLifetime is how long a preview is reused from memory.
	URLPreviewCacheLifetime time.Duration
	// Remote fetches other servers' media; nil: remote media is not fetched.
	Remote Remote
}

// Service is the media repository.
type Service struct {
	cfg   Config
	db    *storage.DB
	files *fileStore
	log   *logrus.Entry
	now   func() time.Time

	fetching   keyedMutex // one fetch per remote media at a time
	generating keyedMutex // one generation per thumbnail at a time
	// decoding bounds how many images are decoded at once, and so the memory thumbnails take.
	decoding chan struct{}
	// previews are recent URL previews; previewSlots bounds the previews fetched at once.
	previews     previewCache
	previewSlots chan struct{}
}

// New returns the media repository, creating its directory.
func New(cfg Config, log *logrus.Entry) (*Service, error) {
	if cfg.MaxUploadSize <= 0 {
		cfg.MaxUploadSize = DefaultMaxUploadSize
	}
	if cfg.MaxPendingUploads <= 0 {
		cfg.MaxPendingUploads = DefaultMaxPendingUploads
	}
	if cfg.PendingLifetime <= 0 {
		cfg.PendingLifetime = DefaultPendingLifetime
	}
	if cfg.RemoteCacheLifetime <= 0 {
		cfg.RemoteCacheLifetime = DefaultRemoteCacheLifetime
	}
	if cfg.ThumbnailSizes == nil {
		cfg.ThumbnailSizes = DefaultThumbnailSizes
	}
	if cfg.MaxImagePixels <= 0 {
		cfg.MaxImagePixels = DefaultMaxImagePixels
	}
	if cfg.URLPreviewCacheLifetime <= 0 {
		cfg.URLPreviewCacheLifetime = DefaultURLPreviewCacheLifetime
	}
	s := &Service{
		cfg:          cfg,
		db:           cfg.DB,
		log:          log.WithField("component", "media"),
		now:          time.Now,
		decoding:     make(chan struct{}, 2),
		previewSlots: make(chan struct{}, previewFetches),
	}
	files, err := newFileStore(cfg.Dir, func(hash string) (bool, error) {
		return storage.MediaHashInUse(context.Background(), s.db, hash)
	})
	if err != nil {
		return nil, err
	}
	s.files = files
	return s, nil
}

var (
	mediaIDRE    = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)
	serverNameRE = regexp.MustCompile(`^(\[[0-9A-Fa-f:.]{2,45}\]|[0-9A-Za-z.-]{1,255})(:[0-9]{1,5})?$`)
)

// checkMXC refuses server names and media ids outside the spec's grammar, which is what keeps
// them from naming paths or hosts they should not (content_repo.md, security considerations).
func checkMXC(origin, mediaID string) error {
	if !serverNameRE.MatchString(origin) || !mediaIDRE.MatchString(mediaID) {
		return mxhttp.NotFound("not a valid media id")
	}
	return nil
}

// newMediaID returns a random media id of 26 characters (130 bits).
func newMediaID() string { return rand.Text() }

func mxcURI(origin, mediaID string) string { return "mxc://" + origin + "/" + mediaID }

// Matrix errors of the media endpoints that mxhttp has no constructor for.
func notYetUploaded() *mxhttp.Error {
	return &mxhttp.Error{Status: http.StatusGatewayTimeout, Code: "M_NOT_YET_UPLOADED", Message: "content has not yet been uploaded"}
}
func cannotOverwrite() *mxhttp.Error {
	return &mxhttp.Error{Status: http.StatusConflict, Code: "M_CANNOT_OVERWRITE_MEDIA", Message: "media already uploaded"}
}
func remoteTooLarge() *mxhttp.Error {
	return &mxhttp.Error{Status: http.StatusBadGateway, Code: "M_TOO_LARGE", Message: "remote content is too large"}
}
func remoteFailed(cause error) *mxhttp.Error {
	return &mxhttp.Error{Status: http.StatusBadGateway, Code: "M_UNKNOWN", Message: "could not fetch remote media", Cause: cause}
}
func cannotThumbnail(cause error) *mxhttp.Error {
	return &mxhttp.Error{Status: http.StatusBadRequest, Code: "M_UNKNOWN", Message: "cannot generate thumbnails for the requested content", Cause: cause}
}

// DeleteUserMedia deletes every media a local user uploaded (and the files no other media uses),
// for the erasure of an account. It returns how many media were deleted.
func (s *Service) DeleteUserMedia(ctx context.Context, userID string) (int, error) {
	keys, err := storage.ListUserMedia(ctx, s.db, userID)
	if err != nil {
		return 0, err
	}
	for i, k := range keys {
		if err := s.deleteMedia(ctx, k.Origin, k.MediaID); err != nil {
			return i, err
		}
	}
	return len(keys), nil
}

func (s *Service) deleteMedia(ctx context.Context, origin, mediaID string) error {
	var hashes []string
	if err := s.db.WithTx(ctx, func(tx *storage.Tx) (err error) {
		hashes, err = tx.DeleteMedia(ctx, origin, mediaID)
		return err
	}); err != nil {
		return err
	}
	var errs []error
	for _, h := range hashes {
		errs = append(errs, s.files.removeIfUnused(h))
	}
	return errors.Join(errs...)
}

// CleanUp deletes cached remote media unused for the remote cache lifetime and asynchronous
// uploads whose id expired unused. It returns how many media it deleted.
func (s *Service) CleanUp(ctx context.Context) (int, error) {
	now := s.now()
	total := 0
	for {
		keys, err := storage.ListStaleMedia(ctx, s.db, s.cfg.ServerName,
			now.Add(-s.cfg.RemoteCacheLifetime).UnixMilli(), now.UnixMilli(), 100)
		if err != nil || len(keys) == 0 {
			return total, err
		}
		for _, k := range keys {
			if err := s.deleteMedia(ctx, k.Origin, k.MediaID); err != nil {
				return total, err
			}
			total++
		}
	}
}

// Run cleans up periodically until ctx ends.
func (s *Service) Run(ctx context.Context) {
	t := time.NewTicker(cleanupInterval)
	defer t.Stop()
	for {
		n, err := s.CleanUp(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.WithError(err).Warn("cleaning up media failed")
		case n > 0:
			s.log.WithField("count", n).Info("deleted unused remote media and expired uploads")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// touch records a read of m, at most once per accessGranularity.
func (s *Service) touch(ctx context.Context, m storage.Media) {
	now := s.now()
	if now.Sub(time.UnixMilli(m.LastAccessTS)) < accessGranularity {
		return
	}
	if err := s.db.WithTx(ctx, func(tx *storage.Tx) error {
		return tx.TouchMedia(ctx, m.Origin, m.MediaID, now.UnixMilli())
	}); err != nil {
		mxhttp.Logger(ctx).WithError(err).Warn("could not record a media access")
	}
}

// servable is content ready to be written out. The caller closes file.
type servable struct {
	file        *os.File
	contentType string
	filename    string
	size        int64
}

func (s *Service) openServable(hash, contentType, filename string, size int64) (*servable, error) {
	f, err := s.files.open(hash)
	if err != nil {
		return nil, mxhttp.Internal(fmt.Errorf("media: opening stored content: %w", err))
	}
	// The file's own size is what will be written, whatever the row says.
	if st, err := f.Stat(); err == nil {
		size = st.Size()
	}
	return &servable{file: f, contentType: contentType, filename: filename, size: size}, nil
}
