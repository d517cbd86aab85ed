package event

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"

	"myelin/keys"
)

// A Proto is an event this server is about to create: everything but the id, hashes and
// signatures, which Build derives.
type Proto struct {
	Type           string
	StateKey       *string
	Sender         string
	RoomID         string // empty for m.room.create in room version 12
	Content        json.RawMessage
	PrevEvents     []string
	AuthEvents     []string
	Depth          int64
	OriginServerTS int64
	// Redacts is the event an m.room.redaction redacts; Build puts it where the version wants
	// it (top level before v11, content.redacts from v11).
	Redacts  string
	Unsigned json.RawMessage
	// PrevEventHashes holds, for room versions 1 and 2 only, the base64 sha256 reference hashes
	// of the events in PrevEvents and AuthEvents, which that format repeats next to each id.
	// An id without an entry is referenced with empty hashes.
	PrevEventHashes map[string]string
}

// Build makes a signed PDU of room version v from p, as server origin with its signing key, and
// returns it parsed.
//
// The PDU is assembled, hashed and signed as an Object and becomes the Event directly: every
// value in it is canonical already (content and unsigned are canonicalised on the way in, with
// the strict rules where v has them), so parsing its JSON again would only repeat the work.
func Build(p Proto, v RoomVersion, origin string, key keys.SigningKey) (*Event, error) {
	o, err := p.object(v, origin)
	if err != nil {
		return nil, err
	}
	o, redacted, err := hashAndSignRedacted(o, v, origin, key)
	if err != nil {
		return nil, err
	}
	o, canonical := o.Encode()
	if len(canonical) > MaxEventBytes {
		return nil, fmt.Errorf("%w: %d bytes as canonical JSON", ErrTooLarge, len(canonical))
	}
	e := &Event{version: v, raw: canonical, obj: o}
	// The redacted form was just made for the signature; the reference hash is the hash of
	// that same form, so fill need not redact the event a second time.
	var ref *[sha256.Size]byte
	if v.EventIDs != IDServerMinted {
		h := referenceHashOfRedacted(redacted)
		ref = &h
	}
	if err := e.fillRef(ref); err != nil {
		return nil, err
	}
	return e, nil
}

// object assembles the unsigned PDU. It checks what Parse would check of the values it makes
// itself rather than copies from canonical input: strings are UTF-8 and, in versions with
// strict canonical JSON, integers are in its range.
func (p Proto) object(v RoomVersion, origin string) (keys.Object, error) {
	parseObject, canonicalJSON := keys.ParseObject, keys.CanonicalJSON
	if v.StrictCanonicalJSON {
		parseObject, canonicalJSON = keys.ParseObjectStrict, keys.CanonicalJSONStrict
		for _, n := range []struct {
			name string
			val  int64
		}{{"depth", p.Depth}, {"origin_server_ts", p.OriginServerTS}} {
			if n.val > maxSafeInteger || n.val < -maxSafeInteger {
				return keys.Object{}, fmt.Errorf("%w: %s: %w", ErrMalformed, n.name, keys.ErrNonStrictValue)
			}
		}
	}
	for _, s := range [...]string{p.Type, p.Sender, p.RoomID, p.Redacts, origin} {
		if !utf8.ValidString(s) {
			return keys.Object{}, fmt.Errorf("%w: %w: string is not UTF-8", ErrMalformed, keys.ErrInvalidJSON)
		}
	}
	if p.StateKey != nil && !utf8.ValidString(*p.StateKey) {
		return keys.Object{}, fmt.Errorf("%w: %w: state_key is not UTF-8", ErrMalformed, keys.ErrInvalidJSON)
	}
	for _, ids := range [][]string{p.PrevEvents, p.AuthEvents} {
		for _, id := range ids {
			if !utf8.ValidString(id) || !utf8.ValidString(p.PrevEventHashes[id]) {
				return keys.Object{}, fmt.Errorf("%w: %w: event id is not UTF-8", ErrMalformed, keys.ErrInvalidJSON)
			}
		}
	}

	content := keys.Object{}
	if len(p.Content) > 0 {
		c, err := parseObject(p.Content)
		if err != nil {
			return keys.Object{}, fmt.Errorf("%w: content: %w", ErrMalformed, err)
		}
		content = c
	}
	// Members are collected unsorted and sorted once, rather than inserted one by one.
	ms := make([]keys.Member, 0, 16)
	add := func(k string, v []byte) { ms = append(ms, keys.Member{Key: k, Value: v}) }
	if p.Type == "m.room.redaction" && p.Redacts != "" {
		if v.RedactsInContent {
			content = content.With("redacts", keys.Quote(p.Redacts))
		} else {
			add("redacts", keys.Quote(p.Redacts))
		}
	}
	add("type", keys.Quote(p.Type))
	add("sender", keys.Quote(p.Sender))
	add("content", content.JSON())
	add("depth", strconv.AppendInt(nil, p.Depth, 10))
	add("origin_server_ts", strconv.AppendInt(nil, p.OriginServerTS, 10))
	add("hashes", []byte("{}"))
	add("signatures", []byte("{}"))
	add("prev_events", p.refs(p.PrevEvents, v.Format))
	add("auth_events", p.refs(p.AuthEvents, v.Format))
	if p.StateKey != nil {
		add("state_key", keys.Quote(*p.StateKey))
	}
	if v.RoomIDFromCreateEvent && p.Type == "m.room.create" {
		if p.RoomID != "" {
			return keys.Object{}, fmt.Errorf("%w: an m.room.create event of room version %s has no room_id", ErrMalformed, v.ID)
		}
	} else {
		add("room_id", keys.Quote(p.RoomID))
	}
	if v.EventIDs == IDServerMinted {
		add("event_id", keys.Quote("$"+randomString(18)+":"+origin))
		add("origin", keys.Quote(origin))
	}
	if len(p.Unsigned) > 0 {
		u, err := canonicalJSON(p.Unsigned)
		if err != nil {
			return keys.Object{}, fmt.Errorf("%w: unsigned: %w", ErrMalformed, err)
		}
		add("unsigned", u)
	}
	return keys.NewObject(ms), nil
}

// pdu is the unsigned PDU as JSON.
func (p Proto) pdu(v RoomVersion, origin string) ([]byte, error) {
	o, err := p.object(v, origin)
	if err != nil {
		return nil, err
	}
	return o.JSON(), nil
}

func (p Proto) refs(ids []string, f Format) []byte {
	b := []byte{'['}
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		if f == FormatV2 {
			b = append(b, keys.Quote(id)...)
			continue
		}
		b = append(b, '[')
		b = append(b, keys.Quote(id)...)
		b = append(b, ',')
		if h, ok := p.PrevEventHashes[id]; ok {
			b = append(b, `{"sha256":`...)
			b = append(b, keys.Quote(h)...)
			b = append(b, '}')
		} else {
			b = append(b, "{}"...)
		}
		b = append(b, ']')
	}
	return append(b, ']')
}

// HashAndSign adds the content hash to a raw PDU and signs it as server origin, following the
// server-server API "Adding hashes and signatures to outgoing events": the signature covers the
// redacted event, so that it survives redaction. Existing signatures are kept.
func HashAndSign(raw []byte, v RoomVersion, origin string, key keys.SigningKey) ([]byte, error) {
	o, err := keys.ParseObject(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if o, err = hashAndSign(o, v, origin, key); err != nil {
		return nil, err
	}
	return o.JSON(), nil
}

func hashAndSign(o keys.Object, v RoomVersion, origin string, key keys.SigningKey) (keys.Object, error) {
	o, _, err := hashAndSignRedacted(o, v, origin, key)
	return o, err
}

// hashAndSignRedacted is hashAndSign that also returns the redacted form of the hashed event
// as it was signed (the signatures are not part of the reference hash).
func hashAndSignRedacted(o keys.Object, v RoomVersion, origin string, key keys.SigningKey) (signedObj, redacted keys.Object, err error) {
	h := contentHash(o)
	o = o.With("hashes", keys.Object{}.With("sha256", keys.Quote(keys.EncodeBase64(h[:]))).JSON())
	redacted, err = redactObject(o, v)
	if err != nil {
		return keys.Object{}, keys.Object{}, err
	}
	signed, err := keys.SignObject(origin, key.ID, key.Private, redacted)
	if err != nil {
		return keys.Object{}, keys.Object{}, err
	}
	sigs, _ := signed.Get("signatures")
	return o.With("signatures", sigs), redacted, nil
}

// maxSafeInteger is (2**53)-1, the largest integer strict canonical JSON allows.
const maxSafeInteger = 1<<53 - 1

const idAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand.Read does not fail on supported platforms
	}
	for i := range b {
		b[i] = idAlphabet[int(b[i])%len(idAlphabet)]
	}
	return string(b)
}
