package e2e

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"myelin/keys"
	"myelin/storage"
)

// maxOneTimeKeysPerUpload bounds one /keys/upload; clients upload a few dozen at a time.
const maxOneTimeKeysPerUpload = 1000

// oneTimeKeyStream orders one-time key uploads, so that claims hand out the oldest first.
const oneTimeKeyStream = "e2e_one_time_keys"

// Upload is the body of POST /keys/upload.
type Upload struct {
	DeviceKeys   json.RawMessage            `json:"device_keys"`
	OneTimeKeys  map[string]json.RawMessage `json:"one_time_keys"`
	FallbackKeys map[string]json.RawMessage `json:"fallback_keys"`
}

// Upload stores a device's keys and returns its unclaimed one-time key counts. Re-uploading a
// one-time key already held is accepted when it is identical and refused otherwise; so are a
// device's identity keys (a device that changed its keys would silently break every session
// others have with it; new keys need a new device).
func (s *Store) Upload(ctx context.Context, userID, deviceID string, up Upload) (map[string]int, error) {
	var deviceKeys []byte
	if len(up.DeviceKeys) > 0 && string(up.DeviceKeys) != "null" {
		obj, err := ValidateDeviceKeys(up.DeviceKeys, userID, deviceID)
		if err != nil {
			return nil, err
		}
		deviceKeys = obj.JSON()
	}
	if len(up.OneTimeKeys) > maxOneTimeKeysPerUpload {
		return nil, fail(ErrInvalidParam, "at most %d one-time keys per upload", maxOneTimeKeysPerUpload)
	}
	otks, err := parseKeyMap(up.OneTimeKeys, userID, deviceID, "one_time_keys")
	if err != nil {
		return nil, err
	}
	fallbacks, err := parseKeyMap(up.FallbackKeys, userID, deviceID, "fallback_keys")
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, k := range fallbacks {
		if seen[k.Algorithm] {
			return nil, fail(ErrInvalidParam, "fallback_keys holds more than one key of algorithm %q", k.Algorithm)
		}
		seen[k.Algorithm] = true
	}

	var counts map[string]int
	var notify func()
	err = s.db.WithTx(ctx, func(tx *storage.Tx) error {
		if deviceKeys != nil {
			if err := sameIdentityKeys(ctx, tx, userID, deviceID, deviceKeys); err != nil {
				return err
			}
			changed, err := tx.UpsertDeviceKeys(ctx, storage.DeviceKeys{UserID: userID, DeviceID: deviceID, KeyJSON: deviceKeys})
			if err != nil {
				return err
			}
			if changed {
				if notify, err = s.markChanged(ctx, tx, userID); err != nil {
					return err
				}
			}
		}
		if len(otks) > 0 {
			pos, err := tx.NextStreamPosition(ctx, oneTimeKeyStream)
			if err != nil {
				return err
			}
			for i := range otks {
				otks[i].UploadPos = pos
			}
			existing, err := tx.InsertOneTimeKeys(ctx, otks)
			if err != nil {
				return err
			}
			for _, k := range otks {
				if old, ok := existing[[2]string{k.Algorithm, k.KeyID}]; ok && string(old) != string(k.KeyJSON) {
					return fail(ErrInvalidParam, "one-time key %s:%s already exists with different contents", k.Algorithm, k.KeyID)
				}
			}
		}
		for _, k := range fallbacks {
			if err := tx.UpsertFallbackKey(ctx, k); err != nil {
				return err
			}
		}
		var err error
		counts, err = storage.OneTimeKeyCounts(ctx, tx, userID, deviceID)
		return err
	})
	if err != nil {
		return nil, err
	}
	if notify != nil {
		notify()
	}
	return withDefaultCount(counts), nil
}

// withDefaultCount always lists signed_curve25519, as Synapse does: some clients read a missing
// count as "unknown" rather than zero and never upload.
func withDefaultCount(counts map[string]int) map[string]int {
	if counts == nil {
		counts = map[string]int{}
	}
	if _, ok := counts["signed_curve25519"]; !ok {
		counts["signed_curve25519"] = 0
	}
	return counts
}

// ValidateDeviceKeys checks an uploaded DeviceKeys object: its required fields, that it belongs
// to the uploading user and device, and that it is signed by the device's own ed25519 key. It
// returns the object in canonical form, without any client-supplied "unsigned".
func ValidateDeviceKeys(raw []byte, userID, deviceID string) (keys.Object, error) {
	obj, err := keys.ParseObject(raw)
	if err != nil {
		return keys.Object{}, fail(ErrInvalidParam, "device_keys is not a JSON object")
	}
	var dk struct {
		UserID     *string                      `json:"user_id"`
		DeviceID   *string                      `json:"device_id"`
		Algorithms []string                     `json:"algorithms"`
		Keys       map[string]string            `json:"keys"`
		Signatures map[string]map[string]string `json:"signatures"`
	}
	if err := json.Unmarshal(raw, &dk); err != nil {
		return keys.Object{}, fail(ErrInvalidParam, "device_keys has the wrong shape")
	}
	switch {
	case dk.UserID == nil || dk.DeviceID == nil || dk.Algorithms == nil || dk.Keys == nil || dk.Signatures == nil:
		return keys.Object{}, fail(ErrInvalidParam, "device_keys needs user_id, device_id, algorithms, keys and signatures")
	case *dk.UserID != userID:
		return keys.Object{}, fail(ErrInvalidParam, "device_keys.user_id does not match the access token")
	case *dk.DeviceID != deviceID:
		return keys.Object{}, fail(ErrInvalidParam, "device_keys.device_id does not match the access token")
	}
	keyID := "ed25519:" + deviceID
	pub, err := decodeEd25519(dk.Keys[keyID])
	if err != nil {
		return keys.Object{}, fail(ErrInvalidParam, "device_keys.keys has no valid %s", keyID)
	}
	if err := keys.VerifyObject(userID, keyID, pub, obj); err != nil {
		return keys.Object{}, fail(ErrInvalidParam, "device_keys is not signed by the device's own ed25519 key")
	}
	return obj.Without("unsigned"), nil
}

func decodeEd25519(s string) (ed25519.PublicKey, error) {
	b, err := keys.DecodeBase64(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, errors.New("not an unpadded base64 ed25519 public key")
	}
	return ed25519.PublicKey(b), nil
}

// parseKeyMap checks one_time_keys or fallback_keys: names "<algorithm>:<key_id>", values a
// string or an object (a signed key, with a string "key").
func parseKeyMap(m map[string]json.RawMessage, userID, deviceID, field string) ([]storage.OneTimeKey, error) {
	out := make([]storage.OneTimeKey, 0, len(m))
	for name, raw := range m {
		alg, id, ok := strings.Cut(name, ":")
		if !ok || alg == "" || id == "" {
			return nil, fail(ErrInvalidParam, "%s: key names must be <algorithm>:<key_id>", field)
		}
		var canonical []byte
		switch {
		case len(raw) > 0 && raw[0] == '"':
			var s string
			if err := json.Unmarshal(raw, &s); err != nil || s == "" {
				return nil, fail(ErrInvalidParam, "%s: %s is not a key", field, name)
			}
			canonical = keys.Quote(s)
		default:
			obj, err := keys.ParseObject(raw)
			if err != nil {
				return nil, fail(ErrInvalidParam, "%s: %s is neither a string nor an object", field, name)
			}
			v, ok := obj.Get("key")
			if _, isString := keys.Unquote(v); !ok || !isString {
				return nil, fail(ErrInvalidParam, "%s: %s has no string \"key\"", field, name)
			}
			canonical = obj.JSON()
		}
		out = append(out, storage.OneTimeKey{UserID: userID, DeviceID: deviceID, Algorithm: alg, KeyID: id, KeyJSON: canonical})
	}
	// Sorted, so that concurrent uploads insert in the same order.
	sort.Slice(out, func(i, j int) bool {
		if out[i].Algorithm != out[j].Algorithm {
			return out[i].Algorithm < out[j].Algorithm
		}
		return out[i].KeyID < out[j].KeyID
	})
	return out, nil
}

// QueryResult is the body of the /keys/query response.
type QueryResult struct {
	Failures        map[string]any                        `json:"failures"`
	DeviceKeys      map[string]map[string]json.RawMessage `json:"device_keys"`
	MasterKeys      map[string]json.RawMessage            `json:"master_keys,omitempty"`
	SelfSigningKeys map[string]json.RawMessage            `json:"self_signing_keys,omitempty"`
	UserSigningKeys map[string]json.RawMessage            `json:"user_signing_keys,omitempty"`
}

// Query returns the device and cross-signing keys of users, as requester may see them: the
// user-signing key only to its owner, and signatures on a master key only when made by its owner
// or by requester. want maps user id to device ids, empty meaning all devices. Users of other
// servers are asked of their servers (federation.go); one that cannot be reached is reported in
// Failures.
func (s *Store) Query(ctx context.Context, requester string, want map[string][]string) (QueryResult, error) {
	res := QueryResult{
		Failures:        map[string]any{},
		DeviceKeys:      map[string]map[string]json.RawMessage{},
		MasterKeys:      map[string]json.RawMessage{},
		SelfSigningKeys: map[string]json.RawMessage{},
		UserSigningKeys: map[string]json.RawMessage{},
	}
	err := s.db.WithReadTx(ctx, func(r storage.Reader) error {
		return s.queryLocal(ctx, r, requester, want, &res)
	})
	if err != nil {
		return res, err
	}
	s.queryRemote(ctx, want, &res)
	return res, nil
}

// queryLocal fills res with the keys of the local users in want, reading each table once for
// all of them rather than once per user: a client's first sync may ask for thousands.
func (s *Store) queryLocal(ctx context.Context, r storage.Reader, requester string, want map[string][]string, res *QueryResult) error {
	var userIDs []string
	localparts := map[string]string{}
	for userID := range want {
		if localpart, local := s.localpart(userID); local {
			userIDs = append(userIDs, userID)
			localparts[userID] = localpart
		}
	}
	if len(userIDs) == 0 {
		return nil
	}
	devKeys, err := storage.ListDeviceKeysOfUsers(ctx, r, userIDs)
	if err != nil {
		return err
	}
	sigs, err := storage.KeySignaturesOnUsers(ctx, r, userIDs)
	if err != nil {
		return err
	}
	var withKeys []string
	for _, userID := range userIDs {
		if len(devKeys[userID]) > 0 {
			withKeys = append(withKeys, localparts[userID])
		}
	}
	names, err := storage.DeviceDisplayNames(ctx, r, withKeys)
	if err != nil {
		return err
	}
	cs, err := storage.CrossSigningKeysOfUsers(ctx, r, userIDs)
	if err != nil {
		return err
	}
	for _, userID := range userIDs {
		err := queryLocalUser(requester, userID, want[userID], devKeys[userID], sigs[userID], names[localparts[userID]], cs[userID], res)
		if err != nil {
			return err
		}
	}
	return nil
}

// queryLocalUser adds one local user's keys to res: those of the devices named in deviceIDs (all
// when empty), with their signatures and display names, and the cross-signing keys requester may see.
func queryLocalUser(requester, userID string, deviceIDs []string, devs []storage.DeviceKeys, sigs []storage.KeySignature,
	names map[string]string, cs map[string][]byte, res *QueryResult) error {
	wantDevice := make(map[string]bool, len(deviceIDs))
	for _, id := range deviceIDs {
		wantDevice[id] = true
	}
	out := map[string]json.RawMessage{}
	for _, d := range devs {
		if len(wantDevice) > 0 && !wantDevice[d.DeviceID] {
			continue
		}
		obj, err := keys.ParseObject(d.KeyJSON)
		if err != nil {
			return fmt.Errorf("e2e: stored device keys of a device of %s: %w", userID, err)
		}
		// Only the owner's self-signing key signs devices; nothing else is stored.
		if obj, err = addSignatures(obj, sigs, d.DeviceID, func(signer string) bool { return signer == userID }); err != nil {
			return err
		}
		unsigned := map[string]any{}
		if name := names[d.DeviceID]; name != "" {
			unsigned["device_display_name"] = name
		}
		u, _ := json.Marshal(unsigned)
		out[d.DeviceID] = obj.With("unsigned", u).JSON()
	}
	res.DeviceKeys[userID] = out

	if raw, ok := cs[KeyMaster]; ok {
		obj, pub, err := parseCrossSigningStored(raw)
		if err != nil {
			return err
		}
		visible := func(signer string) bool { return signer == userID || signer == requester }
		if obj, err = addSignatures(obj, sigs, pub, visible); err != nil {
			return err
		}
		res.MasterKeys[userID] = obj.JSON()
	}
	if raw, ok := cs[KeySelfSigning]; ok {
		res.SelfSigningKeys[userID] = raw
	}
	if raw, ok := cs[KeyUserSigning]; ok && requester == userID {
		res.UserSigningKeys[userID] = raw
	}
	return nil
}

// addSignatures merges the stored signatures on targetKeyID by visible signers into obj.
func addSignatures(obj keys.Object, sigs []storage.KeySignature, targetKeyID string, visible func(signer string) bool) (keys.Object, error) {
	for _, sig := range sigs {
		if sig.TargetKeyID != targetKeyID || !visible(sig.SignerUserID) {
			continue
		}
		var err error
		if obj, err = keys.AddSignature(obj, sig.SignerUserID, sig.SignerKeyID, sig.Signature); err != nil {
			return keys.Object{}, fmt.Errorf("e2e: merging a stored signature: %w", err)
		}
	}
	return obj, nil
}

// ClaimResult is the body of the /keys/claim response.
type ClaimResult struct {
	Failures    map[string]any                                   `json:"failures"`
	OneTimeKeys map[string]map[string]map[string]json.RawMessage `json:"one_time_keys"`
}

// Claim hands out one key per requested device and algorithm: the device's oldest unclaimed
// one-time key, or, when none is left, its fallback key, which is then marked used. Each
// one-time key is handed out at most once. Devices with neither are left out, as are unknown
// users and devices; users of other servers are reported in Failures.
func (s *Store) Claim(ctx context.Context, want map[string]map[string]string) (ClaimResult, error) {
	res := ClaimResult{Failures: map[string]any{}, OneTimeKeys: map[string]map[string]map[string]json.RawMessage{}}
	type claim struct{ user, device, alg string }
	var local []claim
	for userID, devices := range want {
		if _, ok := s.localpart(userID); !ok {
			continue // claimRemote, below
		}
		for device, alg := range devices {
			local = append(local, claim{userID, device, alg})
		}
	}
	if len(local) == 0 {
		s.claimRemote(ctx, want, &res)
		return res, nil
	}
	// A fixed order keeps concurrent claims from taking row locks in opposite orders.
	sort.Slice(local, func(i, j int) bool {
		a, b := local[i], local[j]
		if a.user != b.user {
			return a.user < b.user
		}
		return a.device < b.device
	})
	err := s.db.WithTx(ctx, func(tx *storage.Tx) error {
		clear(res.OneTimeKeys)
		for _, c := range local {
			id, js, err := tx.ClaimOneTimeKey(ctx, c.user, c.device, c.alg)
			if errors.Is(err, storage.ErrNotFound) {
				id, js, err = tx.ClaimFallbackKey(ctx, c.user, c.device, c.alg)
			}
			if errors.Is(err, storage.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if res.OneTimeKeys[c.user] == nil {
				res.OneTimeKeys[c.user] = map[string]map[string]json.RawMessage{}
			}
			res.OneTimeKeys[c.user][c.device] = map[string]json.RawMessage{c.alg + ":" + id: js}
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	s.claimRemote(ctx, want, &res)
	return res, nil
}

// OneTimeKeyCounts returns a device's unclaimed one-time keys per algorithm, for /sync's
// device_one_time_keys_count.
func (s *Store) OneTimeKeyCounts(ctx context.Context, userID, deviceID string) (map[string]int, error) {
	counts, err := storage.OneTimeKeyCounts(ctx, s.db, userID, deviceID)
	if err != nil {
		return nil, err
	}
	return withDefaultCount(counts), nil
}

// UnusedFallbackKeyTypes returns the algorithms of a device's fallback keys that have not been
// handed out, for /sync's device_unused_fallback_key_types (never nil: the field is required).
func (s *Store) UnusedFallbackKeyTypes(ctx context.Context, userID, deviceID string) ([]string, error) {
	algs, err := storage.UnusedFallbackKeyAlgorithms(ctx, s.db, userID, deviceID)
	if algs == nil {
		algs = []string{}
	}
	return algs, err
}

// sameIdentityKeys refuses device keys whose identity keys ("keys") differ from those the device
// already uploaded. Other fields may change (signatures added by the device, for instance).
func sameIdentityKeys(ctx context.Context, tx *storage.Tx, userID, deviceID string, upload []byte) error {
	held, err := storage.ListDeviceKeys(ctx, tx, userID, []string{deviceID})
	if err != nil || len(held) == 0 {
		return err
	}
	identity := func(raw []byte) []byte {
		o, err := keys.ParseObject(raw)
		if err != nil {
			return nil
		}
		v, _ := o.Get("keys")
		return v
	}
	if string(identity(held[0].KeyJSON)) != string(identity(upload)) {
		return fail(ErrInvalidParam, "device %s already has other identity keys; new keys need a new device", deviceID)
	}
	return nil
}
