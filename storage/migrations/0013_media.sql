-- The media repository: files uploaded by this server's users and files of other servers cached
-- here. The bytes live on disk under <data_dir>/media, addressed by their SHA-256 (one file however
-- often the same content is uploaded); these tables hold what is known about each media id.

-- media: one row per mxc://origin/media_id this server holds or has promised (an asynchronous
-- upload created with /create and not uploaded yet has uploaded_ts 0 and no content_hash).
-- uploader is the local user who uploaded it ('' for cached remote media and for URL preview
-- images). last_access_ts drives the removal of unused cached media. legacy_unauthenticated marks media that the deprecated
-- unauthenticated /_matrix/media/v3/download and /thumbnail endpoints may still serve: only media
-- that existed before authenticated media was switched on; new uploads never get it.
-- Personal data: who uploaded what, when, the file name and type, and the content itself (on
-- disk). Deleted: local media with the uploader's erasure (DeleteUserMedia); remote media and URL
-- preview images once unused for media.remote_cache_lifetime; pending uploads once unused_expires_ts passes.
CREATE TABLE media (
	origin TEXT NOT NULL,
	media_id TEXT NOT NULL,
	content_hash TEXT NOT NULL DEFAULT '',
	content_type TEXT NOT NULL DEFAULT '',
	upload_name TEXT NOT NULL DEFAULT '',
	size_bytes BIGINT NOT NULL DEFAULT 0,
	uploader TEXT NOT NULL DEFAULT '',
	created_ts BIGINT NOT NULL,
	uploaded_ts BIGINT NOT NULL DEFAULT 0,
	unused_expires_ts BIGINT NOT NULL DEFAULT 0,
	last_access_ts BIGINT NOT NULL,
	legacy_unauthenticated BOOLEAN NOT NULL DEFAULT FALSE,
	PRIMARY KEY (origin, media_id)
);
CREATE INDEX media_by_uploader ON media (uploader, uploaded_ts);
CREATE INDEX media_by_hash ON media (content_hash);
CREATE INDEX media_by_access ON media (last_access_ts);

-- media_thumbnails: thumbnails generated on demand, one per media, size and method, stored on
-- disk by content hash like the media themselves.
-- Personal data: derived from the media (a small copy of an image). Deleted: with their media.
CREATE TABLE media_thumbnails (
	origin TEXT NOT NULL,
	media_id TEXT NOT NULL,
	width BIGINT NOT NULL,
	height BIGINT NOT NULL,
	method TEXT NOT NULL,
	content_hash TEXT NOT NULL,
	content_type TEXT NOT NULL,
	size_bytes BIGINT NOT NULL,
	created_ts BIGINT NOT NULL,
	PRIMARY KEY (origin, media_id, width, height, method)
);
CREATE INDEX media_thumbnails_by_hash ON media_thumbnails (content_hash);
