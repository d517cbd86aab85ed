package clientapi

import (
	"encoding/json"

	"myelin/storage"
)

// Consent at registration: the m.login.terms stage of User-Interactive Authentication. New users
// are shown the server's policies (config consent.policies) and must accept them before their
// account exists; the versions accepted are stored with the account, in the transaction that
// creates it (storage/consent.go), so that the server can show what each person agreed to.

// ConsentPolicy is one policy document new users must accept (config consent.policies).
type ConsentPolicy struct {
	ID      string
	Version string
	// Documents maps a language code to the document in that language.
	Documents map[string]PolicyDocument
}

// PolicyDocument is one language's copy of a policy.
type PolicyDocument struct {
	Name string `json:"name"`
	URL  string `json:"url"`
}

const (
	// uiaDataConsentPresented keys the versions a registration session's challenge presented
	// (JSON: policy id to version), stored when the session starts.
	uiaDataConsentPresented = "consent_presented"
	// uiaDataConsentAccepted keys the versions the user accepted in the m.login.terms stage.
	uiaDataConsentAccepted = "consent_accepted"
)

// termsParams is the m.login.terms entry of a registration challenge's params, in the spec's
// shape: {"policies": {id: {"version": v, lang: {"name", "url"}}}}. Nil without policies.
func termsParams(policies []ConsentPolicy) map[string]any {
	if len(policies) == 0 {
		return nil
	}
	out := make(map[string]any, len(policies))
	for _, p := range policies {
		def := map[string]any{"version": p.Version}
		for lang, doc := range p.Documents {
			def[lang] = doc
		}
		out[p.ID] = def
	}
	return map[string]any{stageTerms: map[string]any{"policies": out}}
}

// consentVersions maps each policy id to its version.
func consentVersions(policies []ConsentPolicy) map[string]string {
	out := make(map[string]string, len(policies))
	for _, p := range policies {
		out[p.ID] = p.Version
	}
	return out
}

// consentSessionData is what a new registration session remembers of the policies presented,
// so that the versions recorded are those the user was shown even if the operator publishes a
// new version before the user completes the stage. Nil without policies.
func consentSessionData(policies []ConsentPolicy) map[string]string {
	if len(policies) == 0 {
		return nil
	}
	presented, _ := json.Marshal(consentVersions(policies)) // a map of strings always encodes
	return map[string]string{uiaDataConsentPresented: string(presented)}
}

// acceptTerms completes the m.login.terms stage: the user accepted what the session presented.
// A session begun before policies were configured presented none; the current ones, which its
// last challenge listed, are then what was accepted.
func acceptTerms(s *storage.UIASession, spec uiaSpec) {
	if s.Data == nil {
		s.Data = map[string]string{}
	}
	presented, ok := s.Data[uiaDataConsentPresented]
	if !ok {
		presented = spec.data[uiaDataConsentPresented]
	}
	s.Data[uiaDataConsentAccepted] = presented
}

// acceptedConsent returns the versions a completed registration session accepted; ok is false
// when the session did not complete the m.login.terms stage.
func acceptedConsent(s *storage.UIASession) (versions map[string]string, ok bool, err error) {
	raw, ok := s.Data[uiaDataConsentAccepted]
	if !ok {
		return nil, false, nil
	}
	versions = map[string]string{}
	if raw != "" {
		if err := json.Unmarshal([]byte(raw), &versions); err != nil {
			return nil, false, err
		}
	}
	return versions, true, nil
}
