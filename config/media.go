package config

import (
	"path"
	"time"
)

// Media is the media repository (uploads, downloads, thumbnails, remote media).
type Media struct {
	// MaxUploadSize bounds each upload, and each remote media this server fetches, in bytes.
	MaxUploadSize int64 `yaml:"max_upload_size"`
	// UserQuota bounds the total bytes one user may have uploaded; 0: no quota.
	UserQuota int64 `yaml:"user_quota"`
	// MaxPendingUploads bounds the asynchronous uploads (POST /_matrix/media/v1/create) one user
	// may have created and not uploaded yet.
	MaxPendingUploads int `yaml:"max_pending_uploads"`
	// RemoteCacheLifetime: media fetched from other servers and not read for this long is
	// deleted (it is fetched again when next asked for).
	RemoteCacheLifetime time.Duration `yaml:"remote_cache_lifetime"`
	// ThumbnailSizes are generated on demand and cached.
	ThumbnailSizes []ThumbnailSize `yaml:"thumbnail_sizes"`
	// MaxImagePixels bounds the images thumbnailed (width x height as the file declares it), so
	// that a decompression bomb is refused before it is decoded.
	MaxImagePixels int64 `yaml:"max_image_pixels"`
	// LegacyUnauthenticated lets the deprecated unauthenticated /_matrix/media/v3/download and
	// /thumbnail serve media that existed before authenticated media (marked so in the database).
	// New uploads, and remote media cached from now on, are never served there either way.
	LegacyUnauthenticated bool `yaml:"legacy_unauthenticated_media"`
	// AllowPrivateAddresses lets remote media fetches (and URL previews) connect to loopback,
	// private and link-local addresses, independently of federation.allow_private_addresses.
	AllowPrivateAddresses bool       `yaml:"allow_private_addresses"`
	URLPreview            URLPreview `yaml:"url_preview"`
}

// ThumbnailSize is one thumbnail size: "crop" gives exactly width x height, "scale" fits within.
type ThumbnailSize struct {
	Width  int    `yaml:"width"`
	Height int    `yaml:"height"`
	Method string `yaml:"method"`
}

// URLPreview controls GET /_matrix/client/v1/media/preview_url.
type URLPreview struct {
	// Enabled makes the server fetch URLs that clients ask to preview. Off: a preview tells the
	// server what its users read, and fetching arbitrary URLs is a way into the operator's network.
	Enabled bool `yaml:"enabled"`
	// DeniedHosts are host name patterns (globs such as "*.internal") never previewed, on top of
	// the private address rule (media.allow_private_addresses).
	DeniedHosts []string `yaml:"denied_hosts"`
	// CacheLifetime is how long a preview is reused; previews are held in memory only.
	CacheLifetime time.Duration `yaml:"cache_lifetime"`
}

func defaultMedia() Media {
	return Media{
		MaxUploadSize:       50 << 20,
		UserQuota:           1 << 30,
		MaxPendingUploads:   10,
		RemoteCacheLifetime: 30 * 24 * time.Hour,
		ThumbnailSizes: []ThumbnailSize{
			{32, 32, "crop"}, {96, 96, "crop"}, {320, 240, "scale"}, {640, 480, "scale"}, {800, 600, "scale"},
		},
		MaxImagePixels:        32_000_000,
		LegacyUnauthenticated: true,
		URLPreview:            URLPreview{DeniedHosts: []string{}, CacheLifetime: time.Hour},
	}
}

func (c *Config) validateMedia() []string {
	var p []string
	m := c.Media
	if m.MaxUploadSize < 1024 {
		p = append(p, c.at("media.max_upload_size", "must be at least 1024"))
	}
	if m.UserQuota < 0 {
		p = append(p, c.at("media.user_quota", "must be 0 (no quota) or more"))
	}
	if m.MaxPendingUploads < 1 {
		p = append(p, c.at("media.max_pending_uploads", "must be at least 1"))
	}
	if m.RemoteCacheLifetime < time.Minute {
		p = append(p, c.at("media.remote_cache_lifetime", "must be at least 1m, e.g. 720h"))
	}
	for i, t := range m.ThumbnailSizes {
		if t.Width < 1 || t.Height < 1 || t.Width > 4096 || t.Height > 4096 {
			p = append(p, c.at("media.thumbnail_sizes", "entry %d: width and height must be between 1 and 4096", i+1))
		}
		if t.Method != "crop" && t.Method != "scale" {
			p = append(p, c.at("media.thumbnail_sizes", "entry %d: method must be crop or scale, not %q", i+1, t.Method))
		}
	}
	if m.MaxImagePixels < 1_000_000 {
		p = append(p, c.at("media.max_image_pixels", "must be at least 1000000"))
	}
	if m.URLPreview.CacheLifetime < time.Minute || m.URLPreview.CacheLifetime > 7*24*time.Hour {
		p = append(p, c.at("media.url_preview.cache_lifetime", "must be between 1m and 168h"))
	}
	for i, h := range m.URLPreview.DeniedHosts {
		if _, err := path.Match(h, ""); err != nil || h == "" {
			p = append(p, c.at("media.url_preview.denied_hosts", "entry %d: %q is not a host pattern", i+1, h))
		}
	}
	return p
}
