package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"myelin/mxhttp"
	"myelin/roomserver/event"
)

// Errors of the receipt checks; a PDU failing them is dropped.
var (
	// ErrInvalidPDU: the PDU does not have the format of its room version, or is too large.
	ErrInvalidPDU = errors.New("federation: invalid PDU")
	// ErrPDUSignature: the PDU lacks a signature it needs, or one does not verify.
	ErrPDUSignature = errors.New("federation: PDU signature check failed")
)

// checkPDU applies the first three checks of "Checks performed on receipt of a PDU" to a PDU
// of room version v: it must be a valid event of that version (size limits included: a
// canonical PDU over 64 KiB, an id over 255 bytes), else ErrInvalidPDU; its signatures must
// verify with the keys of the servers that must sign it, else ErrPDUSignature; and when its
// content hash does not match, the redacted copy is used in its place, as the spec says. The
// auth checks are the room server's (InputRemote).
func (s *Server) checkPDU(ctx context.Context, raw []byte, v event.RoomVersion) (*event.Event, error) {
	ev, err := event.Parse(raw, v)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidPDU, err)
	}
	if s.cfg.KeyRing == nil {
		return nil, fmt.Errorf("%w: no key ring to verify with", ErrPDUSignature)
	}
	if err := event.VerifySignatures(ev, s.cfg.KeyRing.Lookup(ctx)); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPDUSignature, err)
	}
	if err := ev.CheckContentHash(); err != nil {
		if !errors.Is(err, event.ErrContentHashMismatch) {
			return nil, fmt.Errorf("%w: %w", ErrInvalidPDU, err)
		}
		red, err := ev.Redacted()
		if err != nil {
			return nil, fmt.Errorf("%w: redacting: %w", ErrInvalidPDU, err)
		}
		s.log.WithField("event_id", ev.ID()).Debug("content hash mismatch: using the redacted event")
		return red, nil
	}
	return ev, nil
}

// pduRoomID reads the room_id of a raw PDU, to find its room version before parsing it.
func pduRoomID(raw []byte) string {
	var p struct {
		RoomID string `json:"room_id"`
	}
	_ = json.Unmarshal(raw, &p)
	return p.RoomID
}

// pduEventID makes a best guess at the id of a PDU that could not be parsed with its room
// version, so that the answer to a transaction can name it: the event_id it carries (room
// versions 1 and 2), else its reference hash as room versions 4 to 11 compute it.
func pduEventID(raw []byte) string {
	var p struct {
		EventID string `json:"event_id"`
	}
	if json.Unmarshal(raw, &p) == nil && p.EventID != "" {
		return p.EventID
	}
	if ev, err := event.Parse(raw, event.MustVersion("10")); err == nil {
		return ev.ID()
	}
	return ""
}

// checkEventForEndpoint applies what every endpoint that carries a single event requires
// (send_join, send_leave, send_knock, invite): the event's room and id are those of the path,
// and its sender is a user of the origin.
func checkEventForEndpoint(ev *event.Event, origin, roomID, eventID string) error {
	if ev.RoomID() != roomID {
		return mxhttp.InvalidParam("the event's room_id does not match the path")
	}
	if ev.ID() != eventID {
		return mxhttp.InvalidParam("the event's id does not match the path")
	}
	if string(ev.SenderDomain()) != origin {
		return mxhttp.InvalidParam("the event's sender is not a user of %s", origin)
	}
	return nil
}

// pduError renders a receipt check failure for a single-event endpoint.
func pduError(err error) error {
	switch {
	case errors.Is(err, event.ErrTooLarge):
		return mxhttp.TooLarge("event too large").Because(err)
	case errors.Is(err, ErrInvalidPDU):
		return mxhttp.BadJSON("invalid event").Because(err)
	case errors.Is(err, ErrPDUSignature):
		return mxhttp.InvalidParam("the event's signatures do not verify").Because(err)
	}
	return mxhttp.Internal(err)
}
