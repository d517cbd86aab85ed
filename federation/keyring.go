package federation

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"myelin/keys"
	"myelin/storage"
)

const (
	// maxKeyValidity: "Servers MUST use the lesser of [valid_until_ts] and 7 days into the future".
	maxKeyValidity = 7 * 24 * time.Hour
	// minRefetchInterval keeps a server whose keys cannot be had (or that signs with a key id it
	// does not publish) from making us fetch its keys on every request.
	minRefetchInterval = time.Minute
	keyFetchTimeout    = 30 * time.Second
)

// Errors of KeyRing lookups.
var (
	// ErrKeyNotFound: the server's key id could not be found, directly or through a notary.
	ErrKeyNotFound = errors.New("server key not found")
	// ErrKeyExpired: the key is known but was not valid at the time asked about.
	ErrKeyExpired = errors.New("server key not valid at that time")
	// ErrBadKeyDocument: a key document that is malformed, for another server, or whose
	// signatures do not verify.
	ErrBadKeyDocument = errors.New("invalid server key document")
)

// KeyRingConfig is what a KeyRing needs to know about this server and whom it trusts.
type KeyRingConfig struct {
	ServerName    string
	SigningKey    keys.SigningKey
	OldVerifyKeys map[string]OldVerifyKey
	// Notaries are servers asked for keys that cannot be fetched from their server directly.
	Notaries []string
}

// KeyRing finds the public keys of servers: ours from configuration, others' from the database,
// fetched from the server itself (or, failing that, from notaries) when missing or stale.
type KeyRing struct {
	cfg    KeyRingConfig
	db     *storage.DB
	client *Client
	now    func() time.Time

	mu        sync.Mutex
	inflight  map[string]chan struct{}
	lastFetch map[string]time.Time
}

// NewKeyRing returns a KeyRing storing keys in db and fetching them with client.
func NewKeyRing(cfg KeyRingConfig, db *storage.DB, client *Client) *KeyRing {
	return &KeyRing{cfg: cfg, db: db, client: client, now: time.Now,
		inflight: map[string]chan struct{}{}, lastFetch: map[string]time.Time{}}
}

// PublicKey returns the key keyID of server if it was valid at atTS (milliseconds). atTS is 0
// when the room version does not enforce key validity (room versions 1 to 4); then any key the
// server has published, current or old, is returned. It has the shape of event.KeyLookup once
// the context is bound (see Lookup).
func (k *KeyRing) PublicKey(ctx context.Context, server, keyID string, atTS int64) (ed25519.PublicKey, error) {
	return k.lookup(ctx, server, keyID, atTS, false, true)
}

// Lookup binds ctx, for event.VerifySignatures.
func (k *KeyRing) Lookup(ctx context.Context) func(server, keyID string, atTS int64) (ed25519.PublicKey, error) {
	return func(server, keyID string, atTS int64) (ed25519.PublicKey, error) {
		return k.PublicKey(ctx, server, keyID, atTS)
	}
}

// RequestKey returns a key server may sign requests with now: one of its current verify_keys,
// not an old one, which may only verify events.
func (k *KeyRing) RequestKey(ctx context.Context, server, keyID string) (ed25519.PublicKey, error) {
	return k.lookup(ctx, server, keyID, k.now().UnixMilli(), true, true)
}

func (k *KeyRing) lookup(ctx context.Context, server, keyID string, atTS int64, current, viaNotaries bool) (ed25519.PublicKey, error) {
	if server == k.cfg.ServerName {
		return k.ownKey(keyID, atTS, current)
	}
	now := k.now().UnixMilli()
	stored, err := storage.GetServerKeys(ctx, k.db, server)
	if err != nil {
		return nil, err
	}
	if pub, err := usableKey(stored, keyID, atTS, current, now); err == nil {
		return pub, nil
	}
	minValid := atTS
	if current {
		minValid = max(minValid, now)
	}
	fetchErr := k.fetch(ctx, server, keyID, minValid, viaNotaries)
	if stored, err = storage.GetServerKeys(ctx, k.db, server); err != nil {
		return nil, err
	}
	pub, err := usableKey(stored, keyID, atTS, current, k.now().UnixMilli())
	if err != nil && fetchErr != nil {
		return nil, fmt.Errorf("%w (fetching: %w)", err, fetchErr)
	}
	return pub, err
}

// usableKey picks keyID among a server's stored keys and checks it was valid at atTS.
func usableKey(stored []storage.ServerKey, keyID string, atTS int64, current bool, now int64) (ed25519.PublicKey, error) {
	for _, s := range stored {
		if s.KeyID != keyID {
			continue
		}
		pub, err := keys.DecodeBase64(s.PublicKey)
		if err != nil || len(pub) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w: stored key %s of %s is malformed", ErrBadKeyDocument, keyID, s.ServerName)
		}
		if !keyValidAt(s.ValidUntilTS, s.ExpiredTS, atTS, current, now) {
			return nil, fmt.Errorf("%w: %s of %s at %d", ErrKeyExpired, keyID, s.ServerName, atTS)
		}
		return pub, nil
	}
	return nil, fmt.Errorf("%w: %s", ErrKeyNotFound, keyID)
}

// keyValidAt is the validity rule: a request key must be current and unexpired now; an event
// key, when the room version enforces validity, must have been valid at the event's timestamp
// (before expired_ts for an old key, up to valid_until_ts for a current one).
func keyValidAt(validUntil, expired, atTS int64, current bool, now int64) bool {
	switch {
	case current:
		return expired == 0 && validUntil >= now
	case atTS == 0:
		return true
	case expired != 0:
		return atTS < expired
	default:
		return atTS <= validUntil
	}
}

func (k *KeyRing) ownKey(keyID string, atTS int64, current bool) (ed25519.PublicKey, error) {
	if keyID == k.cfg.SigningKey.ID {
		return k.cfg.SigningKey.Public(), nil
	}
	old, ok := k.cfg.OldVerifyKeys[keyID]
	if !ok {
		return nil, fmt.Errorf("%w: %s is not a key of this server", ErrKeyNotFound, keyID)
	}
	pub, err := keys.DecodeBase64(old.Key)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: old key %s is malformed", ErrBadKeyDocument, keyID)
	}
	if !keyValidAt(0, old.ExpiredTS, atTS, current, k.now().UnixMilli()) {
		return nil, fmt.Errorf("%w: %s", ErrKeyExpired, keyID)
	}
	return pub, nil
}

// fetch gets server's keys, from the server itself and, if that fails or does not give keyID
// valid until minValid, from each notary in turn, storing what verifies. Concurrent fetches of
// one server share a single request, and a server is not asked again within
// minRefetchInterval.
func (k *KeyRing) fetch(ctx context.Context, server, keyID string, minValid int64, viaNotaries bool) error {
	k.mu.Lock()
	if ch, ok := k.inflight[server]; ok {
		k.mu.Unlock()
		select {
		case <-ch:
			return nil // the other caller stored what it found; our caller reads it again
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if last, ok := k.lastFetch[server]; ok && k.now().Sub(last) < minRefetchInterval {
		k.mu.Unlock()
		return fmt.Errorf("%w: keys of %s were fetched less than %s ago", ErrKeyNotFound, server, minRefetchInterval)
	}
	ch := make(chan struct{})
	k.inflight[server] = ch
	k.lastFetch[server] = k.now()
	k.mu.Unlock()
	defer func() {
		k.mu.Lock()
		delete(k.inflight, server)
		k.mu.Unlock()
		close(ch)
	}()

	// The fetch outlives a caller that gives up, since its result serves the next one.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), keyFetchTimeout)
	defer cancel()
	got, err := k.fetchDirect(fctx, server)
	if err == nil {
		if err = k.store(fctx, got); err == nil && hasValidKey(got, keyID, minValid) {
			return nil
		}
	}
	errs := []error{err}
	if viaNotaries {
		for _, notary := range k.cfg.Notaries {
			if notary == server || notary == k.cfg.ServerName {
				continue
			}
			got, err := k.fetchFromNotary(fctx, notary, server, keyID, minValid)
			if err == nil {
				if err = k.store(fctx, got); err == nil && hasValidKey(got, keyID, minValid) {
					return nil
				}
			}
			errs = append(errs, fmt.Errorf("notary %s: %w", notary, err))
		}
	}
	return errors.Join(errs...)
}

func hasValidKey(got []storage.ServerKey, keyID string, minValid int64) bool {
	for _, s := range got {
		if s.KeyID == keyID && (s.ExpiredTS != 0 && minValid < s.ExpiredTS || s.ExpiredTS == 0 && s.ValidUntilTS >= minValid) {
			return true
		}
	}
	return false
}

func (k *KeyRing) store(ctx context.Context, got []storage.ServerKey) error {
	if len(got) == 0 {
		return nil
	}
	return k.db.WithTx(ctx, func(tx *storage.Tx) error { return tx.StoreServerKeys(ctx, got) })
}

// fetchDirect asks server for its own key document.
func (k *KeyRing) fetchDirect(ctx context.Context, server string) ([]storage.ServerKey, error) {
	raw, err := k.client.DoRaw(ctx, server, "GET", "/_matrix/key/v2/server", nil)
	if err != nil {
		return nil, err
	}
	return parseKeyDocument(server, raw, k.now())
}

// fetchFromNotary asks notary for server's keys and keeps the documents that carry both the
// server's own valid signature and the notary's.
func (k *KeyRing) fetchFromNotary(ctx context.Context, notary, server, keyID string, minValid int64) ([]storage.ServerKey, error) {
	criteria := map[string]any{}
	if minValid > 0 {
		criteria["minimum_valid_until_ts"] = minValid
	}
	req := map[string]any{"server_keys": map[string]any{server: map[string]any{keyID: criteria}}}
	var resp struct {
		ServerKeys []json.RawMessage `json:"server_keys"`
	}
	if err := k.client.Do(ctx, notary, "POST", "/_matrix/key/v2/query", req, &resp); err != nil {
		return nil, err
	}
	var out []storage.ServerKey
	var errs []error
	for _, doc := range resp.ServerKeys {
		if err := k.verifyNotarySignature(ctx, notary, doc); err != nil {
			errs = append(errs, err)
			continue
		}
		got, err := parseKeyDocument(server, doc, k.now())
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, got...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no usable key document for %s: %w", ErrKeyNotFound, server, errors.Join(errs...))
	}
	return out, nil
}

// verifyNotarySignature checks that at least one key of the notary signed doc and none that we
// know failed. The notary's own keys are fetched from the notary only, never through notaries.
func (k *KeyRing) verifyNotarySignature(ctx context.Context, notary string, doc []byte) error {
	o, err := keys.ParseObject(doc)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadKeyDocument, err)
	}
	sigs, err := keys.Signatures(o, notary)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadKeyDocument, err)
	}
	verified := false
	for _, id := range keys.Ed25519KeyIDs(sigs) {
		pub, err := k.lookup(ctx, notary, id, k.now().UnixMilli(), true, false)
		if err != nil {
			continue
		}
		if err := keys.VerifyObject(notary, id, pub, o); err != nil {
			return err
		}
		verified = true
	}
	if !verified {
		return fmt.Errorf("%w: not signed by notary %s with a key we could fetch", keys.ErrMissingSignature, notary)
	}
	return nil
}

// keyDocument is the part of a /_matrix/key/v2/server answer that we read.
type keyDocument struct {
	ServerName    string                  `json:"server_name"`
	VerifyKeys    map[string]VerifyKey    `json:"verify_keys"`
	OldVerifyKeys map[string]OldVerifyKey `json:"old_verify_keys"`
	ValidUntilTS  int64                   `json:"valid_until_ts"`
}

// parseKeyDocument checks a key document of server (server_name, at least one verify key, and
// a valid self-signature by every verify key that signed it, at least one) and returns its keys
// as stored: the validity capped at 7 days after fetching, and the document with only the
// server's own signatures, so that a notary's cannot be mistaken for it later.
func parseKeyDocument(server string, raw []byte, fetched time.Time) ([]storage.ServerKey, error) {
	o, err := keys.ParseObject(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadKeyDocument, err)
	}
	var doc keyDocument
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadKeyDocument, err)
	}
	if doc.ServerName != server {
		return nil, fmt.Errorf("%w: document of %q where %q was asked for", ErrBadKeyDocument, doc.ServerName, server)
	}
	if len(doc.VerifyKeys) == 0 {
		return nil, fmt.Errorf("%w: %s has no verify_keys", ErrBadKeyDocument, server)
	}
	sigs, err := keys.Signatures(o, server)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadKeyDocument, err)
	}
	fetchedTS := fetched.UnixMilli()
	validUntil := min(doc.ValidUntilTS, fetched.Add(maxKeyValidity).UnixMilli())
	var out []storage.ServerKey
	verified := false
	for id, vk := range doc.VerifyKeys {
		pub, err := decodeKey(server, id, vk.Key)
		if err != nil {
			return nil, err
		}
		if _, signed := sigs[id]; signed {
			if err := keys.VerifyObject(server, id, pub, o); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrBadKeyDocument, err)
			}
			verified = true
		}
		out = append(out, storage.ServerKey{ServerName: server, KeyID: id, PublicKey: vk.Key,
			ValidUntilTS: validUntil, FetchedTS: fetchedTS})
	}
	if !verified {
		return nil, fmt.Errorf("%w: %s did not sign its key document with any of its verify_keys", ErrBadKeyDocument, server)
	}
	for id, ok := range doc.OldVerifyKeys {
		if _, current := doc.VerifyKeys[id]; current || ok.ExpiredTS <= 0 {
			continue
		}
		if _, err := decodeKey(server, id, ok.Key); err != nil {
			return nil, err
		}
		out = append(out, storage.ServerKey{ServerName: server, KeyID: id, PublicKey: ok.Key,
			ValidUntilTS: validUntil, ExpiredTS: ok.ExpiredTS, FetchedTS: fetchedTS})
	}
	own, err := onlySignaturesOf(o, server)
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].KeyJSON = own
	}
	return out, nil
}

func decodeKey(server, id, b64 string) (ed25519.PublicKey, error) {
	if !strings.HasPrefix(id, "ed25519:") {
		return nil, fmt.Errorf("%w: %s key id %q is not ed25519", ErrBadKeyDocument, server, id)
	}
	pub, err := keys.DecodeBase64(b64)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: %s key %s is malformed", ErrBadKeyDocument, server, id)
	}
	return pub, nil
}

// onlySignaturesOf returns o with its signatures reduced to those of entity.
func onlySignaturesOf(o keys.Object, entity string) ([]byte, error) {
	raw, ok := o.Get("signatures")
	if !ok {
		return o.JSON(), nil
	}
	sigs, err := keys.ParseObject(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: signatures: %w", ErrBadKeyDocument, err)
	}
	return o.With("signatures", sigs.Keep(entity).JSON()).JSON(), nil
}

// KeyDocuments returns the key documents of another server, each signed by that server only,
// for this server to answer as a notary: from the database when they are valid until minValid
// and not past half their lifetime (as keys_server.yaml asks of notaries), otherwise fetched
// from the server directly; when that fails, whatever is cached, so that old events stay
// checkable while a server is offline. None is not an error.
func (k *KeyRing) KeyDocuments(ctx context.Context, server string, minValid int64) ([][]byte, error) {
	now := k.now().UnixMilli()
	stored, err := storage.GetServerKeys(ctx, k.db, server)
	if err != nil {
		return nil, err
	}
	if !freshFor(stored, minValid, now) {
		// A failed fetch leaves the cache as the answer.
		_ = k.fetch(ctx, server, "", max(minValid, now), false)
		if stored, err = storage.GetServerKeys(ctx, k.db, server); err != nil {
			return nil, err
		}
	}
	var docs [][]byte
	seen := map[string]bool{}
	for _, s := range stored {
		if !seen[string(s.KeyJSON)] {
			seen[string(s.KeyJSON)] = true
			docs = append(docs, s.KeyJSON)
		}
	}
	return docs, nil
}

func freshFor(stored []storage.ServerKey, minValid, now int64) bool {
	for _, s := range stored {
		halfLife := s.FetchedTS + (s.ValidUntilTS-s.FetchedTS)/2
		if s.ExpiredTS == 0 && s.ValidUntilTS >= max(minValid, now) && now <= halfLife {
			return true
		}
	}
	return false
}

// validServerName reports whether name follows the server name grammar.
func validServerName(name string) bool {
	_, _, err := splitServerName(name)
	return err == nil
}
