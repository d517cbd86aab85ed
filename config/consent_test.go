package config

import (
	"strings"
	"testing"
)

func TestConsentConfig(t *testing.T) {
	cfg, err := Parse("default", []byte("server_name: example.org\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Consent.Policies) != 0 {
		t.Errorf("default policies %+v: registration must ask for none by default", cfg.Consent.Policies)
	}
	cfg, err = Parse("set", []byte(`consent:
  policies:
    - id: privacy_policy
      version: "1.2"
      languages:
        en: {name: Privacy Policy, url: "https://example.org/privacy-1.2-en.html"}
        fr_FR: {name: Politique de confidentialité, url: "https://example.org/privacy-1.2-fr.html"}
    - id: terms_of_service
      version: v3
      languages:
        en-GB: {name: Terms, url: "https://example.org/tos"}
`))
	if err != nil {
		t.Fatal(err)
	}
	if ps := cfg.Consent.Policies; len(ps) != 2 || ps[0].ID != "privacy_policy" || ps[0].Version != "1.2" ||
		ps[0].Languages["fr_FR"].URL != "https://example.org/privacy-1.2-fr.html" || ps[1].Languages["en-GB"].Name != "Terms" {
		t.Errorf("policies %+v", ps)
	}
	for name, tc := range map[string]struct{ yaml, want string }{
		"empty id":      {"consent:\n  policies:\n    - {version: '1', languages: {en: {name: P, url: 'https://e.org/p'}}}\n", "line 2: consent.policies: entry 1: id must not be empty"},
		"bad id":        {"consent:\n  policies:\n    - {id: 'privacy policy', version: '1', languages: {en: {name: P, url: 'https://e.org/p'}}}\n", `id "privacy policy"`},
		"duplicate id":  {"consent:\n  policies:\n    - {id: p, version: '1', languages: {en: {name: P, url: 'https://e.org/p'}}}\n    - {id: p, version: '2', languages: {en: {name: P, url: 'https://e.org/p'}}}\n", `entry 2: id "p" is listed twice`},
		"empty version": {"consent:\n  policies:\n    - {id: p, languages: {en: {name: P, url: 'https://e.org/p'}}}\n", "entry 1 (p): version must not be empty"},
		"no language":   {"consent:\n  policies:\n    - {id: p, version: '1'}\n", "entry 1 (p): needs at least one language"},
		"bad language":  {"consent:\n  policies:\n    - {id: p, version: '1', languages: {version: {name: P, url: 'https://e.org/p'}}}\n", `"version" is not a language code`},
		"no name":       {"consent:\n  policies:\n    - {id: p, version: '1', languages: {en: {url: 'https://e.org/p'}}}\n", "en: name must not be empty"},
		"relative url":  {"consent:\n  policies:\n    - {id: p, version: '1', languages: {en: {name: P, url: '/privacy.html'}}}\n", `url "/privacy.html" is not an absolute https URL`},
		"http url":      {"consent:\n  policies:\n    - {id: p, version: '1', languages: {en: {name: P, url: 'http://e.org/p'}}}\n", "is not an absolute https URL"},
		"unknown key":   {"consent:\n  policies:\n    - {id: p, version: '1', lang: {}}\n", `unknown key "lang"`},
	} {
		_, err := Parse(name, []byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want a problem mentioning %q", name, err, tc.want)
		}
	}
}

// TestGeneratedConsentExampleParses: the commented example in the generated file is valid.
func TestGeneratedConsentExampleParses(t *testing.T) {
	gen := string(Generate(GenerateOptions{}))
	start := strings.Index(gen, "  #   policies:\n")
	if start < 0 {
		t.Fatal("no consent example in the generated config")
	}
	var example strings.Builder
	example.WriteString("consent:\n")
	for _, line := range strings.Split(gen[start:], "\n") {
		if !strings.HasPrefix(line, "  #   ") {
			break
		}
		example.WriteString("  " + strings.TrimPrefix(line, "  #   ") + "\n")
	}
	cfg, err := Parse("example", []byte(example.String()))
	if err != nil {
		t.Fatalf("%v\n%s", err, example.String())
	}
	if ps := cfg.Consent.Policies; len(ps) != 1 || len(ps[0].Languages) != 2 {
		t.Errorf("example parsed to %+v", ps)
	}
}
