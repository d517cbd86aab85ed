package event

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"myelin/keys"
)

// KeyLookup returns the verification key of a server's key id, valid at atTS (milliseconds; 0
// when the room version does not enforce key validity). It returns an error for a key that is
// unknown or expired at atTS; such keys are skipped.
type KeyLookup func(server, keyID string, atTS int64) (ed25519.PublicKey, error)

// VerifySignatures checks the signatures the spec requires on an event (server-server API
// "Validating hashes and signatures on received events"), over the redacted event: the sender's
// server (except for an invite made from a third-party invite, which any server may send); for
// room versions 1 and 2 the server of the event id; and for a restricted join the server of the
// user in join_authorised_via_users_server. For each server, every known key must verify and at
// least one must be known. Errors wrap keys.ErrMissingSignature or keys.ErrBadSignature.
func VerifySignatures(e *Event, lookup KeyLookup) error {
	servers, err := e.requiredSigners()
	if err != nil {
		return err
	}
	redacted, err := redactObject(e.obj, e.version)
	if err != nil {
		return err
	}
	var atTS int64
	if e.version.EnforceKeyValidity {
		atTS = e.originServerTS
	}
	for _, server := range servers {
		if err := verifyServer(redacted, string(server), atTS, lookup); err != nil {
			return err
		}
	}
	return nil
}

func verifyServer(o keys.Object, server string, atTS int64, lookup KeyLookup) error {
	sigs, err := keys.Signatures(o, server)
	if err != nil {
		return fmt.Errorf("%w: %w", keys.ErrBadSignature, err)
	}
	ids := keys.Ed25519KeyIDs(sigs)
	if len(ids) == 0 {
		return fmt.Errorf("%w: not signed by %s", keys.ErrMissingSignature, server)
	}
	verified := false
	var lookupErr error
	for _, id := range ids {
		pub, err := lookup(server, id, atTS)
		if err != nil {
			lookupErr = errors.Join(lookupErr, err)
			continue
		}
		if err := keys.VerifyObject(server, id, pub, o); err != nil {
			return err
		}
		verified = true
	}
	if !verified {
		return fmt.Errorf("%w: no known key of %s among %s: %w", keys.ErrMissingSignature, server,
			strings.Join(ids, ", "), lookupErr)
	}
	return nil
}

func (e *Event) requiredSigners() ([]ServerName, error) {
	var servers []ServerName
	add := func(s ServerName) {
		for _, have := range servers {
			if have == s {
				return
			}
		}
		servers = append(servers, s)
	}
	var c struct {
		Membership         string          `json:"membership"`
		ThirdPartyInvite   json.RawMessage `json:"third_party_invite"`
		AuthorisedViaUsers *string         `json:"join_authorised_via_users_server"`
	}
	if e.typ == "m.room.member" {
		if err := json.Unmarshal(e.content, &c); err != nil {
			return nil, fmt.Errorf("%w: membership content: %w", ErrMalformed, err)
		}
	}
	if !(c.Membership == "invite" && len(c.ThirdPartyInvite) > 0) {
		add(e.senderDomain)
	}
	if e.version.EventIDs == IDServerMinted {
		if _, domain, ok := strings.Cut(e.id, ":"); ok {
			name, err := ParseServerName(domain)
			if err != nil {
				return nil, fmt.Errorf("%w: event_id: %w", ErrMalformed, err)
			}
			add(name)
		}
	}
	if e.version.RestrictedJoins && c.Membership == "join" && c.AuthorisedViaUsers != nil {
		u, err := ParseUserID(*c.AuthorisedViaUsers)
		if err != nil {
			return nil, fmt.Errorf("%w: join_authorised_via_users_server: %w", ErrMalformed, err)
		}
		add(u.Domain())
	}
	return servers, nil
}
