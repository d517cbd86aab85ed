package config

import (
	"strings"
	"testing"
	"time"
)

func TestFeaturesConfig(t *testing.T) {
	cfg, err := Parse("generated", Generate(GenerateOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.TURN.URIs) != 0 || cfg.TURN.TTL != time.Hour || cfg.Reports.Retention != 90*24*time.Hour ||
		len(cfg.Support.Contacts) != 0 || cfg.Support.Page != "" {
		t.Fatalf("defaults: %+v %+v %+v", cfg.TURN, cfg.Reports, cfg.Support)
	}

	cfg, err = Parse("good", []byte(`turn:
  uris: ["turn:turn.example.org:3478?transport=udp"]
  shared_secret: s3cret
  ttl: 30m
support:
  contacts:
    - {matrix_id: "@admin:example.org", role: m.role.admin}
    - {email_address: security@example.org, role: m.role.security}
    - {email_address: mods@example.org, role: org.example.moderator}
  page: https://example.org/help
reports:
  retention: 720h
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TURN.SharedSecret != "s3cret" || cfg.TURN.TTL != 30*time.Minute || len(cfg.Support.Contacts) != 3 || cfg.Reports.Retention != 720*time.Hour {
		t.Fatalf("parsed: %+v %+v %+v", cfg.TURN, cfg.Support, cfg.Reports)
	}

	for name, tc := range map[string]struct{ yaml, want string }{
		"bad uri":          {"turn:\n  uris: [\"http://x\"]\n  shared_secret: s\n", "turn.uris"},
		"no credentials":   {"turn:\n  uris: [\"turn:x\"]\n", "set turn.shared_secret"},
		"both credentials": {"turn:\n  uris: [\"turn:x\"]\n  shared_secret: s\n  username: u\n  password: p\n", "not both"},
		"half static":      {"turn:\n  uris: [\"turn:x\"]\n  username: u\n", "set together"},
		"ttl":              {"turn:\n  ttl: 1s\n", "turn.ttl"},
		"contact no way":   {"support:\n  contacts: [{role: m.role.admin}]\n", "needs a matrix_id"},
		"contact bad id":   {"support:\n  contacts: [{matrix_id: admin, role: m.role.admin}]\n", "not a Matrix user id"},
		"contact bad mail": {"support:\n  contacts: [{email_address: nope, role: m.role.admin}]\n", "not an email address"},
		"contact role":     {"support:\n  contacts: [{matrix_id: \"@a:b\", role: boss}]\n", "role must be"},
		"page":             {"support:\n  page: ftp://x\n", "support.page"},
		"retention":        {"reports:\n  retention: 1m\n", "reports.retention"},
	} {
		_, err := Parse(name, []byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want a problem mentioning %q", name, err, tc.want)
		}
	}
}
