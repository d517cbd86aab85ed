package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestMediaConfig(t *testing.T) {
	cfg, err := Parse("generated", Generate(GenerateOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.Media, defaultMedia()) {
		t.Fatalf("generated media section %+v differs from the defaults %+v", cfg.Media, defaultMedia())
	}
	if cfg.Media.MaxUploadSize != 50<<20 || cfg.Media.RemoteCacheLifetime != 30*24*time.Hour ||
		cfg.Media.URLPreview.Enabled || cfg.Media.AllowPrivateAddresses {
		t.Fatalf("media defaults: %+v", cfg.Media)
	}

	cfg, err = Parse("custom", []byte("media:\n  remote_cache_lifetime: 48h\n  thumbnail_sizes:\n    - {width: 64, height: 64, method: crop}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Media.RemoteCacheLifetime != 48*time.Hour || len(cfg.Media.ThumbnailSizes) != 1 {
		t.Fatalf("custom media: %+v", cfg.Media)
	}

	_, err = Parse("bad", []byte(`media:
  max_upload_size: 10
  user_quota: -1
  max_pending_uploads: 0
  remote_cache_lifetime: 1s
  thumbnail_sizes:
    - {width: 0, height: 32, method: stretch}
  max_image_pixels: 5
  url_preview:
    enabled: true
    cache_lifetime: 1s
    denied_hosts: ["[bad"]
`))
	if err == nil {
		t.Fatal("bad media config accepted")
	}
	for _, want := range []string{"line 2: media.max_upload_size", "media.user_quota", "media.max_pending_uploads",
		"media.remote_cache_lifetime", "entry 1: width", "entry 1: method", "media.max_image_pixels", "media.url_preview.cache_lifetime", "entry 1: \"[bad\""} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q: %v", want, err)
		}
	}
}
