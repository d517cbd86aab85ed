package config

import (
	"strings"
	"testing"
)

func TestFederationNotariesAndStaticHosts(t *testing.T) {
	cfg, err := Parse("t.yaml", []byte("server_name: hs1.test\nfederation:\n  key_notaries: [\"matrix.org\"]\n  static_hosts:\n    hs2.test: \"127.0.0.1:8449\"\n    \"[::1]:99\": \"localhost:1\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Federation.KeyNotaries) != 1 || cfg.Federation.StaticHosts["hs2.test"] != "127.0.0.1:8449" {
		t.Errorf("parsed %+v", cfg.Federation)
	}
	for _, c := range []struct{ yaml, want string }{
		{"federation:\n  key_notaries: [\"bad name\"]\n", "line 2: federation.key_notaries: entry 1"},
		{"server_name: a.test\nfederation:\n  key_notaries: [a.test]\n", "its own notary"},
		{"federation:\n  static_hosts:\n    \"bad name\": \"127.0.0.1:1\"\n", "not a server name"},
		{"federation:\n  static_hosts:\n    hs2.test: \"127.0.0.1\"\n", "not host:port"},
		{"federation:\n  static_hosts:\n    hs2.test: \"127.0.0.1:0\"\n", "not host:port"},
	} {
		_, err := Parse("t.yaml", []byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.yaml, err, c.want)
		}
	}
}
