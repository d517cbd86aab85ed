package config

import (
	"strings"
	"testing"
	"time"
)

func TestRetentionConfig(t *testing.T) {
	cfg, err := Parse("default", []byte("server_name: example.org\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Retention != (Retention{PurgeInterval: time.Hour}) {
		t.Errorf("default retention %+v: history must be kept forever by default", cfg.Retention)
	}
	cfg, err = Parse("set", []byte("retention:\n  default_max_lifetime: 720h\n  min_lifetime: 24h\n  max_lifetime: 8760h\n  purge_interval: 1s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Retention{DefaultMaxLifetime: 720 * time.Hour, MinLifetime: 24 * time.Hour, MaxLifetime: 8760 * time.Hour,
		PurgeInterval: time.Second}); cfg.Retention != want {
		t.Errorf("retention %+v, want %+v", cfg.Retention, want)
	}
	for name, tc := range map[string]struct{ yaml, want string }{
		"interval":          {"retention:\n  purge_interval: 500ms\n", "retention.purge_interval: must be at least 1s"},
		"negative":          {"retention:\n  min_lifetime: -1h\n", "retention.min_lifetime: must not be negative"},
		"min above max":     {"retention:\n  min_lifetime: 2h\n  max_lifetime: 1h\n", "must not exceed retention.max_lifetime"},
		"default below min": {"retention:\n  default_max_lifetime: 1h\n  min_lifetime: 2h\n", "must be at least retention.min_lifetime"},
		"default above max": {"retention:\n  default_max_lifetime: 3h\n  max_lifetime: 2h\n", "default_max_lifetime: must not exceed"},
		"unknown key":       {"retention:\n  enabled: true\n", "enabled"},
	} {
		_, err := Parse(name, []byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want a problem mentioning %q", name, err, tc.want)
		}
	}
}
