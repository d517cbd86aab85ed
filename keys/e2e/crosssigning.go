package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"myelin/keys"
	"myelin/storage"
)

// The cross-signing key types, as stored and as named in a key's usage.
const (
	KeyMaster      = "master"
	KeySelfSigning = "self_signing"
	KeyUserSigning = "user_signing"
)

// CrossSigningUpload is the body of POST /keys/device_signing/upload, without auth.
type CrossSigningUpload struct {
	MasterKey      json.RawMessage `json:"master_key"`
	SelfSigningKey json.RawMessage `json:"self_signing_key"`
	UserSigningKey json.RawMessage `json:"user_signing_key"`
}

func present(raw json.RawMessage) bool { return len(raw) > 0 && string(raw) != "null" }

// crossSigningKey is a validated cross-signing key.
type crossSigningKey struct {
	typ string
	obj keys.Object
	pub string // unpadded base64 ed25519 public key, also its key id after "ed25519:"
}

// parseCrossSigningKey checks a CrossSigningKey object of type typ belonging to userID: usage
// names typ, and keys holds exactly one ed25519 key whose name carries the key itself.
func parseCrossSigningKey(raw []byte, userID, typ string) (crossSigningKey, error) {
	obj, err := keys.ParseObject(raw)
	if err != nil {
		return crossSigningKey{}, fail(ErrInvalidParam, "%s key is not a JSON object", typ)
	}
	var k struct {
		UserID string            `json:"user_id"`
		Usage  []string          `json:"usage"`
		Keys   map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(raw, &k); err != nil {
		return crossSigningKey{}, fail(ErrInvalidParam, "%s key has the wrong shape", typ)
	}
	if k.UserID != userID {
		return crossSigningKey{}, fail(ErrInvalidParam, "%s key: user_id does not match the access token", typ)
	}
	if !slices.Contains(k.Usage, typ) {
		return crossSigningKey{}, fail(ErrInvalidParam, "%s key: usage does not include %q", typ, typ)
	}
	if len(k.Keys) != 1 {
		return crossSigningKey{}, fail(ErrInvalidParam, "%s key: keys must hold exactly one key", typ)
	}
	var name, value string
	for name, value = range k.Keys { // the only entry
	}
	pub, ok := strings.CutPrefix(name, "ed25519:")
	if !ok || pub != value {
		return crossSigningKey{}, fail(ErrInvalidParam, "%s key: keys must be {\"ed25519:<key>\": \"<key>\"}", typ)
	}
	if _, err := decodeEd25519(pub); err != nil {
		return crossSigningKey{}, fail(ErrInvalidParam, "%s key: not an ed25519 public key", typ)
	}
	return crossSigningKey{typ: typ, obj: obj.Without("unsigned"), pub: pub}, nil
}

// parseCrossSigningStored reads back a stored cross-signing key and its public key.
func parseCrossSigningStored(raw []byte) (keys.Object, string, error) {
	obj, err := keys.ParseObject(raw)
	if err != nil {
		return keys.Object{}, "", fmt.Errorf("e2e: stored cross-signing key: %w", err)
	}
	var k struct {
		Keys map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(raw, &k); err != nil {
		return keys.Object{}, "", fmt.Errorf("e2e: stored cross-signing key: %w", err)
	}
	for name := range k.Keys {
		return obj, strings.TrimPrefix(name, "ed25519:"), nil
	}
	return keys.Object{}, "", errors.New("e2e: stored cross-signing key has no key")
}

// CrossSigningNeedsAuth reports whether an upload must pass User-Interactive Authentication:
// it must unless the user has no master key yet, or every key in the upload is already stored
// exactly as sent (a retried upload).
func (s *Store) CrossSigningNeedsAuth(ctx context.Context, userID string, up CrossSigningUpload) (bool, error) {
	stored, err := storage.CrossSigningKeys(ctx, s.db, userID)
	if err != nil {
		return false, err
	}
	return needsAuth(stored, up), nil
}

func needsAuth(stored map[string][]byte, up CrossSigningUpload) bool {
	if _, ok := stored[KeyMaster]; !ok {
		return false
	}
	for typ, raw := range map[string]json.RawMessage{KeyMaster: up.MasterKey, KeySelfSigning: up.SelfSigningKey, KeyUserSigning: up.UserSigningKey} {
		if !present(raw) {
			continue
		}
		obj, err := keys.ParseObject(raw)
		if err != nil || string(obj.Without("unsigned").JSON()) != string(stored[typ]) {
			return true
		}
	}
	return false
}

// UploadCrossSigningKeys stores a user's cross-signing keys. The self-signing and user-signing
// keys must be signed by the master key of the upload, or by the stored one. authenticated says
// the caller has completed User-Interactive Authentication; without it, replacing keys fails
// with ErrAuthRequired.
func (s *Store) UploadCrossSigningKeys(ctx context.Context, userID string, up CrossSigningUpload, authenticated bool) error {
	var parsed []crossSigningKey
	for _, p := range []struct {
		typ string
		raw json.RawMessage
	}{{KeyMaster, up.MasterKey}, {KeySelfSigning, up.SelfSigningKey}, {KeyUserSigning, up.UserSigningKey}} {
		if !present(p.raw) {
			continue
		}
		k, err := parseCrossSigningKey(p.raw, userID, p.typ)
		if err != nil {
			return err
		}
		parsed = append(parsed, k)
	}
	if len(parsed) == 0 {
		return fail(ErrMissingParam, "no cross-signing key to upload")
	}
	localpart, ok := s.localpart(userID)
	if !ok {
		return fail(ErrForbidden, "not a local user")
	}

	var notify func()
	err := s.db.WithTx(ctx, func(tx *storage.Tx) error {
		stored, err := storage.CrossSigningKeys(ctx, tx, userID)
		if err != nil {
			return err
		}
		if !authenticated && needsAuth(stored, up) {
			return ErrAuthRequired
		}
		master := parsed[0]
		if master.typ != KeyMaster {
			raw, ok := stored[KeyMaster]
			if !ok {
				return fail(ErrMissingParam, "no master signing key is available")
			}
			obj, pub, err := parseCrossSigningStored(raw)
			if err != nil {
				return err
			}
			master = crossSigningKey{typ: KeyMaster, obj: obj, pub: pub}
		}
		devices, err := storage.ListDevices(ctx, tx, localpart)
		if err != nil {
			return err
		}
		changed := false
		for _, k := range parsed {
			for _, d := range devices {
				// Signatures name keys by id; a key named like a device would be ambiguous.
				if d.DeviceID == k.pub {
					return fail(ErrForbidden, "the %s key's public key is one of the user's device ids", k.typ)
				}
			}
			if k.typ != KeyMaster {
				pub, _ := decodeEd25519(master.pub)
				if err := keys.VerifyObject(userID, "ed25519:"+master.pub, pub, k.obj); err != nil {
					return fail(ErrInvalidSignature, "the %s key is not signed by the master key", k.typ)
				}
			}
			js := k.obj.JSON()
			old, had := stored[k.typ]
			if had && string(old) == string(js) {
				continue
			}
			if had {
				if _, oldPub, err := parseCrossSigningStored(old); err == nil && oldPub != k.pub {
					// Signatures on and by a replaced key vouch for nothing any more.
					if err := tx.DeleteKeySignaturesOn(ctx, userID, oldPub); err != nil {
						return err
					}
					if err := tx.DeleteKeySignaturesBy(ctx, userID, "ed25519:"+oldPub); err != nil {
						return err
					}
				}
			}
			if err := tx.UpsertCrossSigningKey(ctx, userID, k.typ, js); err != nil {
				return err
			}
			changed = true
		}
		if changed {
			notify, err = s.markChanged(ctx, tx, userID)
		}
		return err
	})
	if err != nil {
		return err
	}
	if notify != nil {
		notify()
	}
	return nil
}

// SignatureFailure is one entry of the failures of /keys/signatures/upload.
type SignatureFailure struct {
	Errcode string `json:"errcode"`
	Error   string `json:"error"`
}

// UploadSignatures stores signatures made by signer: on its own devices (with its self-signing
// key), on its own master key (with one of its devices), and on other local users' master keys
// (with its user-signing key). signed maps user id to key id (device id or public key) to the
// signed object, which must match the stored key apart from its signatures. Each signature is
// verified and stored as given; what fails is reported per user and key id.
func (s *Store) UploadSignatures(ctx context.Context, signer string, signed map[string]map[string]json.RawMessage) (map[string]map[string]SignatureFailure, error) {
	failures := map[string]map[string]SignatureFailure{}
	var notify func()
	err := s.db.WithTx(ctx, func(tx *storage.Tx) error {
		clear(failures)
		own, err := storage.CrossSigningKeys(ctx, tx, signer)
		if err != nil {
			return err
		}
		stored := 0
		for target, byKey := range signed {
			for keyID, raw := range byKey {
				sigs, err := s.checkSignature(ctx, tx, signer, own, target, keyID, raw)
				var e *Error
				if errors.As(err, &e) {
					if failures[target] == nil {
						failures[target] = map[string]SignatureFailure{}
					}
					failures[target][keyID] = SignatureFailure{Errcode: e.Kind.Error(), Error: e.Msg}
					continue
				}
				if err != nil {
					return err
				}
				for _, sig := range sigs {
					if err := tx.UpsertKeySignature(ctx, sig); err != nil {
						return err
					}
					stored++
				}
			}
		}
		if stored > 0 {
			// Signatures on another user's master key are only shown to the signer, so only
			// the signer's own devices need to query again.
			notify, err = s.markChanged(ctx, tx, signer)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if notify != nil {
		notify()
	}
	return failures, nil
}

// checkSignature works out which key target/keyID is, which of signer's keys may sign it, and
// returns the verified signatures to store.
func (s *Store) checkSignature(ctx context.Context, tx *storage.Tx, signer string, own map[string][]byte, target, keyID string, raw []byte) ([]storage.KeySignature, error) {
	obj, err := keys.ParseObject(raw)
	if err != nil {
		return nil, fail(ErrInvalidParam, "not a JSON object")
	}
	// signerKeys: the signer's keys allowed to sign this target, by key id.
	var (
		storedObj  []byte
		signerKeys = map[string]string{}
	)
	if _, local := s.localpart(target); !local {
		return nil, fail(ErrNotFound, "signatures on remote users' keys are not supported yet")
	}
	targetKeys, err := storage.CrossSigningKeys(ctx, tx, target)
	if err != nil {
		return nil, err
	}
	var targetMasterPub string
	if m, ok := targetKeys[KeyMaster]; ok {
		if _, targetMasterPub, err = parseCrossSigningStored(m); err != nil {
			return nil, err
		}
	}
	switch {
	case target == signer && keyID == targetMasterPub:
		storedObj = targetKeys[KeyMaster]
		devs, err := storage.ListDeviceKeys(ctx, tx, signer, nil)
		if err != nil {
			return nil, err
		}
		for _, d := range devs {
			var dk struct {
				Keys map[string]string `json:"keys"`
			}
			if json.Unmarshal(d.KeyJSON, &dk) == nil {
				if pub := dk.Keys["ed25519:"+d.DeviceID]; pub != "" {
					signerKeys["ed25519:"+d.DeviceID] = pub
				}
			}
		}
	case target == signer:
		devs, err := storage.ListDeviceKeys(ctx, tx, signer, []string{keyID})
		if err != nil {
			return nil, err
		}
		if len(devs) == 0 {
			return nil, fail(ErrNotFound, "unknown key")
		}
		storedObj = devs[0].KeyJSON
		if ssk, ok := own[KeySelfSigning]; ok {
			if _, pub, err := parseCrossSigningStored(ssk); err == nil {
				signerKeys["ed25519:"+pub] = pub
			}
		}
	case keyID == targetMasterPub:
		storedObj = targetKeys[KeyMaster]
		if usk, ok := own[KeyUserSigning]; ok {
			if _, pub, err := parseCrossSigningStored(usk); err == nil {
				signerKeys["ed25519:"+pub] = pub
			}
		}
	default:
		return nil, fail(ErrNotFound, "unknown key")
	}
	if len(signerKeys) == 0 {
		return nil, fail(ErrMissingParam, "no key that may sign this one is available")
	}
	st, err := keys.ParseObject(storedObj)
	if err != nil {
		return nil, fmt.Errorf("e2e: stored key: %w", err)
	}
	if string(keys.SigningBytes(st)) != string(keys.SigningBytes(obj)) {
		return nil, fail(ErrInvalidParam, "the signed object does not match the stored key")
	}
	given, err := keys.Signatures(obj, signer)
	if err != nil {
		return nil, fail(ErrInvalidParam, "signatures has the wrong shape")
	}
	var out []storage.KeySignature
	for sigKeyID, sig := range given {
		pub64, allowed := signerKeys[sigKeyID]
		if !allowed {
			continue // a signature the object already carried, or one by a key that may not sign it
		}
		pub, err := decodeEd25519(pub64)
		if err != nil {
			continue
		}
		if err := keys.VerifyObject(signer, sigKeyID, pub, obj); err != nil {
			return nil, fail(ErrInvalidSignature, "invalid signature")
		}
		out = append(out, storage.KeySignature{
			TargetUserID: target, TargetKeyID: keyID, SignerUserID: signer, SignerKeyID: sigKeyID, Signature: sig,
		})
	}
	if len(out) == 0 {
		return nil, fail(ErrInvalidSignature, "no signature by a key that may sign this one")
	}
	return out, nil
}
