package storage

import (
	"context"
	"fmt"
)

// Media is what the database knows about one mxc://Origin/MediaID (see 0013_media.sql).
type Media struct {
	Origin      string
	MediaID     string
	ContentHash string // "" while an asynchronous upload is pending
	ContentType string
	UploadName  string
	Size        int64
	// Uploader is the local user who uploaded it; "" for cached remote media.
	Uploader   string
	CreatedTS  int64
	UploadedTS int64 // 0 while an asynchronous upload is pending
	// UnusedExpiresTS is when a pending upload's id lapses; 0 once uploaded.
	UnusedExpiresTS int64
	LastAccessTS    int64
	// LegacyUnauthenticated: the deprecated unauthenticated endpoints may serve it.
	LegacyUnauthenticated bool
}

// Pending reports whether the media id was created but nothing was uploaded to it yet.
func (m Media) Pending() bool { return m.UploadedTS == 0 }

// MediaThumbnail is one generated thumbnail of a media.
type MediaThumbnail struct {
	Origin      string
	MediaID     string
	Width       int
	Height      int
	Method      string
	ContentHash string
	ContentType string
	Size        int64
	CreatedTS   int64
}

const mediaColumns = `origin, media_id, content_hash, content_type, upload_name, size_bytes, uploader,
	created_ts, uploaded_ts, unused_expires_ts, last_access_ts, legacy_unauthenticated`

func scanMedia(scan func(...any) error) (Media, error) {
	var m Media
	err := scan(&m.Origin, &m.MediaID, &m.ContentHash, &m.ContentType, &m.UploadName, &m.Size, &m.Uploader,
		&m.CreatedTS, &m.UploadedTS, &m.UnusedExpiresTS, &m.LastAccessTS, &m.LegacyUnauthenticated)
	return m, err
}

// InsertMedia records a media; ErrConflict when the media id exists.
func (tx *Tx) InsertMedia(ctx context.Context, m Media) error {
	_, err := tx.Exec(ctx, `INSERT INTO media (`+mediaColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		m.Origin, m.MediaID, m.ContentHash, m.ContentType, m.UploadName, m.Size, m.Uploader,
		m.CreatedTS, m.UploadedTS, m.UnusedExpiresTS, m.LastAccessTS, m.LegacyUnauthenticated)
	if err != nil {
		return fmt.Errorf("storage: inserting media %s/%s: %w", m.Origin, m.MediaID, err)
	}
	return nil
}

// GetMedia returns a media; ErrNotFound when unknown.
func GetMedia(ctx context.Context, r Reader, origin, mediaID string) (Media, error) {
	m, err := scanMedia(r.QueryRow(ctx, `SELECT `+mediaColumns+` FROM media WHERE origin = $1 AND media_id = $2`,
		origin, mediaID).Scan)
	if err != nil {
		return Media{}, fmt.Errorf("storage: reading media %s/%s: %w", origin, mediaID, err)
	}
	return m, nil
}

// CompletePendingMedia fills in a pending upload. ErrConflict when content was already uploaded
// to it, ErrNotFound when the id does not exist.
func (tx *Tx) CompletePendingMedia(ctx context.Context, m Media) error {
	res, err := tx.Exec(ctx, `UPDATE media SET content_hash = $3, content_type = $4, upload_name = $5,
		size_bytes = $6, uploaded_ts = $7, unused_expires_ts = 0, last_access_ts = $7
		WHERE origin = $1 AND media_id = $2 AND uploaded_ts = 0`,
		m.Origin, m.MediaID, m.ContentHash, m.ContentType, m.UploadName, m.Size, m.UploadedTS)
	if err != nil {
		return fmt.Errorf("storage: completing media %s/%s: %w", m.Origin, m.MediaID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 1 {
		return nil
	}
	if _, err := GetMedia(ctx, tx, m.Origin, m.MediaID); err != nil {
		return err
	}
	return fmt.Errorf("storage: media %s/%s already uploaded: %w", m.Origin, m.MediaID, ErrConflict)
}

// TouchMedia records that a media was read at ts.
func (tx *Tx) TouchMedia(ctx context.Context, origin, mediaID string, ts int64) error {
	_, err := tx.Exec(ctx, `UPDATE media SET last_access_ts = $3 WHERE origin = $1 AND media_id = $2 AND last_access_ts < $3`,
		origin, mediaID, ts)
	if err != nil {
		return fmt.Errorf("storage: touching media %s/%s: %w", origin, mediaID, err)
	}
	return nil
}

// MediaUsage returns the bytes a local user has uploaded, for the quota.
func MediaUsage(ctx context.Context, r Reader, uploader string) (int64, error) {
	var n int64
	if err := r.QueryRow(ctx, `SELECT COALESCE(SUM(size_bytes), 0) FROM media WHERE uploader = $1`, uploader).Scan(&n); err != nil {
		return 0, fmt.Errorf("storage: reading media usage: %w", err)
	}
	return n, nil
}

// CountPendingMedia returns how many created, not yet uploaded, not yet expired media ids a user
// holds at now.
func CountPendingMedia(ctx context.Context, r Reader, uploader string, now int64) (int, error) {
	var n int
	if err := r.QueryRow(ctx, `SELECT COUNT(*) FROM media WHERE uploader = $1 AND uploaded_ts = 0 AND unused_expires_ts > $2`,
		uploader, now).Scan(&n); err != nil {
		return 0, fmt.Errorf("storage: counting pending media: %w", err)
	}
	return n, nil
}

// GetMediaThumbnails returns the stored thumbnails of a media.
func GetMediaThumbnails(ctx context.Context, r Reader, origin, mediaID string) ([]MediaThumbnail, error) {
	rows, err := r.Query(ctx, `SELECT origin, media_id, width, height, method, content_hash, content_type, size_bytes, created_ts
		FROM media_thumbnails WHERE origin = $1 AND media_id = $2`, origin, mediaID)
	if err != nil {
		return nil, fmt.Errorf("storage: reading thumbnails of %s/%s: %w", origin, mediaID, err)
	}
	defer rows.Close()
	var out []MediaThumbnail
	for rows.Next() {
		var t MediaThumbnail
		if err := rows.Scan(&t.Origin, &t.MediaID, &t.Width, &t.Height, &t.Method, &t.ContentHash, &t.ContentType, &t.Size, &t.CreatedTS); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// InsertMediaThumbnail records a thumbnail; one generated concurrently for the same size is kept.
func (tx *Tx) InsertMediaThumbnail(ctx context.Context, t MediaThumbnail) error {
	_, err := tx.Exec(ctx, `INSERT INTO media_thumbnails
		(origin, media_id, width, height, method, content_hash, content_type, size_bytes, created_ts)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (origin, media_id, width, height, method) DO NOTHING`,
		t.Origin, t.MediaID, t.Width, t.Height, t.Method, t.ContentHash, t.ContentType, t.Size, t.CreatedTS)
	if err != nil {
		return fmt.Errorf("storage: inserting thumbnail of %s/%s: %w", t.Origin, t.MediaID, err)
	}
	return nil
}

// DeleteMedia deletes a media and its thumbnails and returns the content hashes they used, so
// that the caller can remove the files no other row still uses (MediaHashInUse).
func (tx *Tx) DeleteMedia(ctx context.Context, origin, mediaID string) ([]string, error) {
	var hashes []string
	rows, err := tx.Query(ctx, `SELECT content_hash FROM media WHERE origin = $1 AND media_id = $2 AND content_hash <> ''
		UNION SELECT content_hash FROM media_thumbnails WHERE origin = $1 AND media_id = $2`, origin, mediaID)
	if err != nil {
		return nil, fmt.Errorf("storage: reading hashes of %s/%s: %w", origin, mediaID, err)
	}
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			rows.Close()
			return nil, err
		}
		hashes = append(hashes, h)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM media_thumbnails WHERE origin = $1 AND media_id = $2`, origin, mediaID); err != nil {
		return nil, fmt.Errorf("storage: deleting thumbnails of %s/%s: %w", origin, mediaID, err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM media WHERE origin = $1 AND media_id = $2`, origin, mediaID); err != nil {
		return nil, fmt.Errorf("storage: deleting media %s/%s: %w", origin, mediaID, err)
	}
	return hashes, nil
}

// MediaHashInUse reports whether any media or thumbnail still uses a content hash.
func MediaHashInUse(ctx context.Context, r Reader, hash string) (bool, error) {
	var n int
	if err := r.QueryRow(ctx, `SELECT (SELECT COUNT(*) FROM media WHERE content_hash = $1)
		+ (SELECT COUNT(*) FROM media_thumbnails WHERE content_hash = $1)`, hash).Scan(&n); err != nil {
		return false, fmt.Errorf("storage: checking media hash: %w", err)
	}
	return n > 0, nil
}

// MediaKey names one media.
type MediaKey struct{ Origin, MediaID string }

// ListUserMedia returns every media a local user uploaded (or created and has not uploaded yet).
func ListUserMedia(ctx context.Context, r Reader, uploader string) ([]MediaKey, error) {
	return listMediaKeys(ctx, r, `SELECT origin, media_id FROM media WHERE uploader = $1 ORDER BY created_ts`, uploader)
}

// ListStaleMedia returns up to limit media to clean up at now: cached media last read before
// unusedBefore (remote media, whose origin is not localServer, and local media without an
// uploader, which URL previews store), and pending uploads whose id has expired.
func ListStaleMedia(ctx context.Context, r Reader, localServer string, unusedBefore, now int64, limit int) ([]MediaKey, error) {
	return listMediaKeys(ctx, r, `SELECT origin, media_id FROM media
		WHERE ((origin <> $1 OR uploader = '') AND last_access_ts < $2) OR (uploaded_ts = 0 AND unused_expires_ts < $3)
		ORDER BY last_access_ts LIMIT $4`, localServer, unusedBefore, now, limit)
}

func listMediaKeys(ctx context.Context, r Reader, query string, args ...any) ([]MediaKey, error) {
	rows, err := r.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("storage: listing media: %w", err)
	}
	defer rows.Close()
	var out []MediaKey
	for rows.Next() {
		var k MediaKey
		if err := rows.Scan(&k.Origin, &k.MediaID); err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}
