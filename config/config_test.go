package config

import (
	"strings"
	"testing"
)

func TestGeneratedConfigParsesToDefaults(t *testing.T) {
	cfg, err := Parse("generated", Generate(GenerateOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	d := Default()
	d.applyDerivedDefaults()
	if cfg.ServerName != d.ServerName || cfg.Client.Listen != d.Client.Listen ||
		cfg.Federation.Listen != d.Federation.Listen || cfg.SigningKeyPath != d.SigningKeyPath ||
		!cfg.Rooms.EncryptPrivateByDefault || cfg.Registration.Enabled || !cfg.RateLimit.Enabled {
		t.Fatalf("generated config differs from defaults: %+v", cfg)
	}
}

func TestGenerateOptions(t *testing.T) {
	cfg, err := Parse("generated", Generate(GenerateOptions{
		ServerName: "example.org", DataDir: "/var/lib/myelin", ClientListen: "127.0.0.1:18008",
		FederationListen: "127.0.0.1:18448", DatabaseURL: "postgres://u@localhost/db",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ServerName != "example.org" || cfg.DataDir != "/var/lib/myelin" || cfg.Client.Listen != "127.0.0.1:18008" ||
		cfg.Federation.Listen != "127.0.0.1:18448" || cfg.Database.URL != "postgres://u@localhost/db" ||
		cfg.SigningKeyPath != "/var/lib/myelin/signing.key" {
		t.Fatalf("options not applied: %+v", cfg)
	}
}

func TestEmptyFileIsDefaults(t *testing.T) {
	cfg, err := Parse("empty", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ServerName != "localhost" || cfg.Database.Synchronous != "normal" {
		t.Fatalf("unexpected %+v", cfg)
	}
}

func TestBadConfigReportsEveryProblemWithItsLine(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		want []string
	}{
		{"unknown key", "server_name: a.b\nfederaton:\n  listen: x\n", []string{`line 2: unknown key "federaton"`}},
		{"unknown nested key", "client:\n  listen: 127.0.0.1:1\n  lisen: x\n", []string{`line 3: unknown key "lisen"`}},
		{"wrong type", "registration:\n  enabled: maybe\n", []string{"line 2"}},
		{"several values", "server_name: \"bad name!\"\nlog:\n  level: loud\n  format: xml\nclient:\n  listen: nope\n",
			[]string{"line 1: server_name", "line 3: log.level", "line 4: log.format", "line 6: client.listen"}},
		{"database", "database:\n  url: mysql://x\n  sqlite_synchronous: off\n",
			[]string{"line 2: database.url", "line 3: database.sqlite_synchronous"}},
		{"tls pair", "federation:\n  tls_cert: a.pem\n", []string{"line 2: federation.tls_cert"}},
		{"room version", "rooms:\n  default_version: \"99\"\n", []string{"line 2: rooms.default_version"}},
		{"not yaml", "server_name: [\n", []string{"yaml"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("test.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("accepted a bad config")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}
