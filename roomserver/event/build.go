package event

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strconv"

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
func Build(p Proto, v RoomVersion, origin string, key keys.SigningKey) (*Event, error) {
	raw, err := p.pdu(v, origin)
	if err != nil {
		return nil, err
	}
	signed, err := HashAndSign(raw, v, origin, key)
	if err != nil {
		return nil, err
	}
	return Parse(signed, v)
}

func (p Proto) pdu(v RoomVersion, origin string) ([]byte, error) {
	o := keys.Object{}
	content := []byte("{}")
	if len(p.Content) > 0 {
		c, err := keys.ParseObject(p.Content)
		if err != nil {
			return nil, fmt.Errorf("%w: content: %w", ErrMalformed, err)
		}
		content = c.JSON()
	}
	if p.Type == "m.room.redaction" && p.Redacts != "" {
		if v.RedactsInContent {
			c, _ := keys.ParseObject(content)
			content = c.With("redacts", keys.Quote(p.Redacts)).JSON()
		} else {
			o = o.With("redacts", keys.Quote(p.Redacts))
		}
	}
	o = o.With("type", keys.Quote(p.Type)).
		With("sender", keys.Quote(p.Sender)).
		With("content", content).
		With("depth", strconv.AppendInt(nil, p.Depth, 10)).
		With("origin_server_ts", strconv.AppendInt(nil, p.OriginServerTS, 10)).
		With("hashes", []byte("{}")).
		With("signatures", []byte("{}")).
		With("prev_events", p.refs(p.PrevEvents, v.Format)).
		With("auth_events", p.refs(p.AuthEvents, v.Format))
	if p.StateKey != nil {
		o = o.With("state_key", keys.Quote(*p.StateKey))
	}
	if v.RoomIDFromCreateEvent && p.Type == "m.room.create" {
		if p.RoomID != "" {
			return nil, fmt.Errorf("%w: an m.room.create event of room version %s has no room_id", ErrMalformed, v.ID)
		}
	} else {
		o = o.With("room_id", keys.Quote(p.RoomID))
	}
	if v.EventIDs == IDServerMinted {
		o = o.With("event_id", keys.Quote("$"+randomString(18)+":"+origin)).
			With("origin", keys.Quote(origin))
	}
	if len(p.Unsigned) > 0 {
		u, err := keys.CanonicalJSON(p.Unsigned)
		if err != nil {
			return nil, fmt.Errorf("%w: unsigned: %w", ErrMalformed, err)
		}
		o = o.With("unsigned", u)
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
	h := contentHash(o)
	o = o.With("hashes", keys.Object{}.With("sha256", keys.Quote(keys.EncodeBase64(h[:]))).JSON())
	redacted, err := redactObject(o, v)
	if err != nil {
		return nil, err
	}
	signed, err := keys.SignObject(origin, key.ID, key.Private, redacted)
	if err != nil {
		return nil, err
	}
	sigs, _ := signed.Get("signatures")
	return o.With("signatures", sigs).JSON(), nil
}

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
