package config

import (
	"net/url"
	"regexp"
	"sort"
)

// Consent is what new users must accept before their account exists: the server's terms of
// service, privacy policy and the like, offered as the m.login.terms stage of registration.
// No policies (the default): registration asks for none.
type Consent struct {
	Policies []ConsentPolicy `yaml:"policies"`
}

// ConsentPolicy is one versioned policy document, available in one or more languages. A new
// version is published by changing Version (and the URLs): users who accepted an older one are
// listed as such by `myelin consent`, never counted as having accepted the new one.
type ConsentPolicy struct {
	// ID names the policy in m.login.terms, e.g. "privacy_policy" (opaque identifier grammar).
	ID string `yaml:"id"`
	// Version of the document, e.g. "1.2" (opaque identifier grammar).
	Version string `yaml:"version"`
	// Languages maps a language code ("en", "fr", "en-US") to the document in that language.
	Languages map[string]PolicyDocument `yaml:"languages"`
}

// PolicyDocument is one language's copy of a policy.
type PolicyDocument struct {
	// Name is what clients show next to the checkbox, e.g. "Privacy Policy".
	Name string `yaml:"name"`
	// URL is where the text is; https only, so that what the user reads is what was published.
	URL string `yaml:"url"`
}

var (
	// opaqueID is the appendix's opaque identifier grammar, which policy ids and versions use.
	opaqueID = regexp.MustCompile(`^[A-Za-z0-9._~-]{1,255}$`)
	// languageCode is an RFC 5646 tag, or its underscore form (en_US) that the spec tolerates.
	languageCode = regexp.MustCompile(`^[A-Za-z]{2,8}([-_][A-Za-z0-9]{1,8})*$`)
)

func (c *Config) validateConsent() []string {
	var p []string
	seen := map[string]bool{}
	for i, pol := range c.Consent.Policies {
		n := i + 1
		switch {
		case pol.ID == "":
			p = append(p, c.at("consent.policies", "entry %d: id must not be empty", n))
		case !opaqueID.MatchString(pol.ID):
			p = append(p, c.at("consent.policies", "entry %d: id %q may only hold letters, digits and . _ ~ -", n, pol.ID))
		case seen[pol.ID]:
			p = append(p, c.at("consent.policies", "entry %d: id %q is listed twice", n, pol.ID))
		}
		seen[pol.ID] = true
		switch {
		case pol.Version == "":
			p = append(p, c.at("consent.policies", "entry %d (%s): version must not be empty", n, pol.ID))
		case !opaqueID.MatchString(pol.Version):
			p = append(p, c.at("consent.policies", "entry %d (%s): version %q may only hold letters, digits and . _ ~ -", n, pol.ID, pol.Version))
		}
		if len(pol.Languages) == 0 {
			p = append(p, c.at("consent.policies", "entry %d (%s): needs at least one language, e.g. languages: {en: {name: ..., url: https://...}}", n, pol.ID))
		}
		langs := make([]string, 0, len(pol.Languages))
		for l := range pol.Languages {
			langs = append(langs, l)
		}
		sort.Strings(langs)
		for _, lang := range langs {
			doc := pol.Languages[lang]
			// "version" shares the policy object with the language codes in m.login.terms.
			if !languageCode.MatchString(lang) || lang == "version" {
				p = append(p, c.at("consent.policies", "entry %d (%s): %q is not a language code such as en or en-US", n, pol.ID, lang))
			}
			if doc.Name == "" {
				p = append(p, c.at("consent.policies", "entry %d (%s): %s: name must not be empty", n, pol.ID, lang))
			}
			if u, err := url.Parse(doc.URL); err != nil || u.Scheme != "https" || u.Host == "" {
				p = append(p, c.at("consent.policies", "entry %d (%s): %s: url %q is not an absolute https URL", n, pol.ID, lang, doc.URL))
			}
		}
	}
	return p
}
