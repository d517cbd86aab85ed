package stateres

import (
	"fmt"

	"myelin/roomserver/auth"
	"myelin/roomserver/event"
)

var (
	createKey      = event.StateTuple{Type: auth.TypeCreate}
	powerLevelsKey = event.StateTuple{Type: auth.TypePowerLevels}
)

// senderPower is the power level of e's sender according to e's own auth events, the first key
// of the reverse topological power ordering.
func (s *store) senderPower(e *event.Event) (int64, error) {
	authEvents, err := s.authEvents(e)
	if err != nil {
		return 0, err
	}
	create := authEvents[createKey]
	if create == nil {
		// Only the create event itself cites none; it precedes every other event anyway.
		return 0, nil
	}
	pl, err := auth.NewPowerLevels(authEvents[powerLevelsKey], create)
	if err != nil {
		return 0, fmt.Errorf("%w: auth events of %s: %w", ErrBadEvent, e.ID(), err)
	}
	return pl.UserLevel(e.Sender()), nil
}

// authState is the state an event is checked against, as the auth rules read it.
type authState func(event.StateTuple) *event.Event

var _ auth.AuthEvents = authState(nil)

func (a authState) Create() *event.Event      { return a(createKey) }
func (a authState) PowerLevels() *event.Event { return a(powerLevelsKey) }
func (a authState) JoinRules() *event.Event   { return a(event.StateTuple{Type: auth.TypeJoinRules}) }
func (a authState) Member(userID string) *event.Event {
	return a(event.StateTuple{Type: auth.TypeMember, StateKey: userID})
}
func (a authState) ThirdPartyInvite(token string) *event.Event {
	return a(event.StateTuple{Type: auth.TypeThirdPartyInvite, StateKey: token})
}
