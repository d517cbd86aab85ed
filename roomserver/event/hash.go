package event

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"

	"myelin/keys"
)

// ErrContentHashMismatch: the event's hashes.sha256 is missing or does not match its content.
// The spec's answer is to use the redacted event in its place, not to drop it.
var ErrContentHashMismatch = errors.New("content hash mismatch")

// ContentHash is the sha256 of the event without unsigned, signatures and hashes
// (server-server API "Calculating the content hash for an event").
func ContentHash(raw []byte) ([sha256.Size]byte, error) {
	o, err := keys.ParseObject(raw)
	if err != nil {
		return [sha256.Size]byte{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return contentHash(o), nil
}

func contentHash(o keys.Object) [sha256.Size]byte {
	return sha256.Sum256(o.Without("unsigned", "signatures", "hashes").JSON())
}

// CheckContentHash compares the content hash of a raw PDU with its hashes.sha256.
func CheckContentHash(raw []byte) error {
	o, err := keys.ParseObject(raw)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return checkContentHash(o)
}

// CheckContentHash compares the content hash of the event with its hashes.sha256.
func (e *Event) CheckContentHash() error { return checkContentHash(e.obj) }

func checkContentHash(o keys.Object) error {
	want, err := claimedContentHash(o)
	if err != nil {
		return err
	}
	got := contentHash(o)
	if subtle.ConstantTimeCompare(got[:], want) != 1 {
		return ErrContentHashMismatch
	}
	return nil
}

func claimedContentHash(o keys.Object) ([]byte, error) {
	raw, ok := o.Get("hashes")
	if !ok {
		return nil, fmt.Errorf("%w: no hashes", ErrContentHashMismatch)
	}
	hashes, err := keys.ParseObject(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: hashes is not an object", ErrContentHashMismatch)
	}
	v, ok := hashes.Get("sha256")
	if !ok {
		return nil, fmt.Errorf("%w: no sha256 hash", ErrContentHashMismatch)
	}
	s, ok := keys.Unquote(v)
	if !ok {
		return nil, fmt.Errorf("%w: sha256 hash is not a string", ErrContentHashMismatch)
	}
	b, err := keys.DecodeBase64(s)
	if err != nil {
		return nil, fmt.Errorf("%w: sha256 hash is not base64", ErrContentHashMismatch)
	}
	return b, nil
}

// ReferenceHash is the sha256 of the redacted event without signatures and unsigned
// (server-server API "Calculating the reference hash for an event"). Event ids are made from it
// from room version 3 on.
func ReferenceHash(raw []byte, v RoomVersion) ([sha256.Size]byte, error) {
	o, err := keys.ParseObject(raw)
	if err != nil {
		return [sha256.Size]byte{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return referenceHash(o, v)
}

// ReferenceHash is the event's reference hash.
func (e *Event) ReferenceHash() ([sha256.Size]byte, error) { return referenceHash(e.obj, e.version) }

func referenceHash(o keys.Object, v RoomVersion) ([sha256.Size]byte, error) {
	r, err := redactObject(o, v)
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	return referenceHashOfRedacted(r), nil
}

// referenceHashOfRedacted is the reference hash of an event whose redacted form is r.
func referenceHashOfRedacted(r keys.Object) [sha256.Size]byte {
	// age_ts is already gone: redaction keeps no such top-level key.
	return sha256.Sum256(r.Without("signatures", "unsigned").JSON())
}

// hashID encodes a reference hash as an event id (sigil '$') or, in room version 12, a room id
// (sigil '!').
func hashID(sigil byte, h [sha256.Size]byte, f EventIDFormat) string {
	if f == IDBase64 {
		return string(sigil) + keys.EncodeBase64(h[:])
	}
	return string(sigil) + keys.EncodeBase64URL(h[:])
}
