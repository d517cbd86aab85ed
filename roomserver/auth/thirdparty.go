package auth

import (
	"crypto/ed25519"
	"encoding/json"

	"myelin/keys"
)

// thirdPartyInvite is the invite rule for an invite that carries content.third_party_invite
// (5.4.1 in v1–v5 and v12, 4.3.1/4.4.1 later).
func (c *checker) thirdPartyInvite(raw json.RawMessage, target, targetMembership string) error {
	if targetMembership == "ban" {
		return reject(RuleInviteTPBanned)
	}
	var tpi struct {
		Signed json.RawMessage `json:"signed"`
	}
	if json.Unmarshal(raw, &tpi) != nil || tpi.Signed == nil || string(tpi.Signed) == "null" {
		return reject(RuleInviteTPNoSigned)
	}
	var signed thirdPartySigned
	if json.Unmarshal(tpi.Signed, &signed) != nil || signed.MXID == nil || signed.Token == nil {
		return reject(RuleInviteTPSigned)
	}
	if *signed.MXID != target {
		return reject(RuleInviteTPMXID)
	}
	ev := c.auth.ThirdPartyInvite(*signed.Token)
	if ev == nil {
		return reject(RuleInviteTPNoEvent)
	}
	if ev.Sender() != c.e.Sender() {
		return reject(RuleInviteTPSender)
	}
	if signedByAnyKey(tpi.Signed, publicKeys(ev.Content())) {
		return nil
	}
	return reject(RuleInviteTPSignature)
}

// publicKeys are the keys of an m.room.third_party_invite: public_key and each
// public_keys[].public_key, unpadded base64. Undecodable keys are skipped.
func publicKeys(content json.RawMessage) []ed25519.PublicKey {
	var c struct {
		PublicKey  string `json:"public_key"`
		PublicKeys []struct {
			PublicKey string `json:"public_key"`
		} `json:"public_keys"`
	}
	// A malformed content just yields fewer keys: the invite then has nothing to match.
	_ = json.Unmarshal(content, &c)
	var out []ed25519.PublicKey
	add := func(s string) {
		if b, err := keys.DecodeBase64(s); err == nil && len(b) == ed25519.PublicKeySize {
			out = append(out, b)
		}
	}
	if c.PublicKey != "" {
		add(c.PublicKey)
	}
	for _, k := range c.PublicKeys {
		add(k.PublicKey)
	}
	return out
}

// signedByAnyKey says whether any signature in signed.signatures verifies under any of pubs.
// The rule matches signatures to keys, whoever the signing entity claims to be.
func signedByAnyKey(signed json.RawMessage, pubs []ed25519.PublicKey) bool {
	if len(pubs) == 0 {
		return false
	}
	o, err := keys.ParseObject(signed)
	if err != nil {
		return false
	}
	rawSigs, ok := o.Get("signatures")
	if !ok {
		return false
	}
	sigs, err := keys.ParseObject(rawSigs)
	if err != nil {
		return false
	}
	for _, entity := range sigs.Members() {
		byKey, err := keys.Signatures(o, entity.Key)
		if err != nil {
			continue
		}
		for keyID := range byKey {
			for _, pub := range pubs {
				if keys.VerifyObject(entity.Key, keyID, pub, o) == nil {
					return true
				}
			}
		}
	}
	return false
}
