package e2e_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"myelin/keys"
	"myelin/keys/e2e"
	"myelin/storage"
)

const server = "example.test"

// fakeRooms is a RoomMembership over a fixed list of rooms.
type fakeRooms struct{ rooms [][]string }

func (f fakeRooms) SharedRoomUsers(_ context.Context, userID string) ([]string, error) {
	var out []string
	for _, members := range f.rooms {
		if slices.Contains(members, userID) {
			out = append(out, members...)
		}
	}
	return out, nil
}

// recordingNotifier remembers what it was told.
type recordingNotifier struct {
	mu       sync.Mutex
	toDevice []string // "user/device@pos"
	lists    []string
}

func (n *recordingNotifier) ToDeviceQueued(user string, devices []string, pos int64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, d := range devices {
		n.toDevice = append(n.toDevice, fmt.Sprintf("%s/%s@%d", user, d, pos))
	}
}

func (n *recordingNotifier) DeviceListsChanged(users []string, _ int64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.lists = append(n.lists, users...)
}

// newStore returns a store with local users, each with the given devices.
func newStore(t *testing.T, db *storage.DB, opts e2e.Options, users map[string][]string) *e2e.Store {
	t.Helper()
	ctx := context.Background()
	err := db.WithTx(ctx, func(tx *storage.Tx) error {
		for lp, devices := range users {
			if err := tx.InsertAccount(ctx, storage.Account{Localpart: lp, CreatedTS: 1}); err != nil {
				return err
			}
			for _, d := range devices {
				if _, err := tx.UpsertDevice(ctx, storage.Device{Localpart: lp, DeviceID: d, DisplayName: lp + "'s " + d, CreatedTS: 1, LastSeenTS: 1}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return e2e.New(db, server, opts)
}

func uid(lp string) string { return "@" + lp + ":" + server }

// device is a test client device with its ed25519 identity key.
type device struct {
	user, id string
	priv     ed25519.PrivateKey
}

func newDevice(t *testing.T, user, id string) device {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return device{user: user, id: id, priv: priv}
}

func (d device) pub() string { return keys.EncodeBase64(d.priv.Public().(ed25519.PublicKey)) }

// keys returns the device's signed DeviceKeys object.
func (d device) deviceKeys(t *testing.T) json.RawMessage {
	t.Helper()
	obj := map[string]any{
		"user_id":    d.user,
		"device_id":  d.id,
		"algorithms": []string{"m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"},
		"keys": map[string]string{
			"curve25519:" + d.id: keys.EncodeBase64(make([]byte, 32)),
			"ed25519:" + d.id:    d.pub(),
		},
	}
	return sign(t, obj, d.user, "ed25519:"+d.id, d.priv)
}

// otk returns a signed one-time key object.
func (d device) otk(t *testing.T, n int, fallback bool) json.RawMessage {
	obj := map[string]any{"key": fmt.Sprintf("otk%d-%s", n, d.id)}
	if fallback {
		obj["fallback"] = true
	}
	return sign(t, obj, d.user, "ed25519:"+d.id, d.priv)
}

func sign(t *testing.T, obj any, entity, keyID string, priv ed25519.PrivateKey) json.RawMessage {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	out, err := keys.SignJSON(entity, keyID, priv, raw)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// crossKey is a cross-signing key pair.
type crossKey struct{ priv ed25519.PrivateKey }

func newCrossKey(t *testing.T) crossKey {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return crossKey{priv}
}

func (k crossKey) pub() string { return keys.EncodeBase64(k.priv.Public().(ed25519.PublicKey)) }

// object returns the CrossSigningKey object of k for user, signed by signer unless nil.
func (k crossKey) object(t *testing.T, user, usage string, signer *crossKey) json.RawMessage {
	obj := map[string]any{"user_id": user, "usage": []string{usage}, "keys": map[string]string{"ed25519:" + k.pub(): k.pub()}}
	if signer == nil {
		raw, _ := json.Marshal(obj)
		return raw
	}
	return sign(t, obj, user, "ed25519:"+signer.pub(), signer.priv)
}

// errKind names the kind of a store error, "" for nil.
func errKind(err error) string {
	if err == nil {
		return ""
	}
	for _, k := range []error{e2e.ErrInvalidParam, e2e.ErrMissingParam, e2e.ErrInvalidSignature, e2e.ErrForbidden, e2e.ErrNotFound, e2e.ErrAuthRequired} {
		if errors.Is(err, k) {
			return k.Error()
		}
	}
	return "other: " + err.Error()
}
