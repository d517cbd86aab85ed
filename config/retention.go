package config

import "time"

// Retention is how long rooms keep their messages on this server. The bodies of non-state
// events older than a room's lifetime are purged (what is left is a stub the room's DAG needs);
// state events stay.
type Retention struct {
	// DefaultMaxLifetime applies to rooms whose state has no m.room.retention max_lifetime.
	// 0 (the default) keeps history forever, so that upgrading a server loses nothing.
	DefaultMaxLifetime time.Duration `yaml:"default_max_lifetime"`
	// MinLifetime and MaxLifetime bound what a room's m.room.retention may ask for: a lifetime
	// outside them is clamped to them. 0: no bound.
	MinLifetime time.Duration `yaml:"min_lifetime"`
	MaxLifetime time.Duration `yaml:"max_lifetime"`
	// PurgeInterval is how often expired events are looked for.
	PurgeInterval time.Duration `yaml:"purge_interval"`
}

func defaultRetention() Retention { return Retention{PurgeInterval: time.Hour} }

func (c *Config) validateRetention() []string {
	var p []string
	r := c.Retention
	for _, k := range []struct {
		key string
		d   time.Duration
	}{
		{"retention.default_max_lifetime", r.DefaultMaxLifetime},
		{"retention.min_lifetime", r.MinLifetime},
		{"retention.max_lifetime", r.MaxLifetime},
	} {
		if k.d < 0 {
			p = append(p, c.at(k.key, "must not be negative (0: no limit)"))
		}
	}
	if r.PurgeInterval < time.Second {
		p = append(p, c.at("retention.purge_interval", "must be at least 1s, e.g. 1h"))
	}
	if r.MinLifetime > 0 && r.MaxLifetime > 0 && r.MinLifetime > r.MaxLifetime {
		p = append(p, c.at("retention.min_lifetime", "must not exceed retention.max_lifetime"))
	}
	if d := r.DefaultMaxLifetime; d > 0 {
		if r.MinLifetime > 0 && d < r.MinLifetime {
			p = append(p, c.at("retention.default_max_lifetime", "must be at least retention.min_lifetime"))
		}
		if r.MaxLifetime > 0 && d > r.MaxLifetime {
			p = append(p, c.at("retention.default_max_lifetime", "must not exceed retention.max_lifetime"))
		}
	}
	return p
}
