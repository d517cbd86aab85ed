package auth

import (
	"encoding/json"
	"fmt"

	"myelin/keys"
	"myelin/roomserver/event"
)

// createContent is what the rules read from the room's m.room.create event.
type createContent struct {
	// creator joins first and, in v1–v11, holds 100 until there is a power levels event:
	// content.creator up to v10, the sender from v11.
	creator string
	// creators (v12+): the sender and additional_creators, with infinite power.
	creators  []string
	federate  bool
	createdID string
}

type rawCreate struct {
	Creator            *json.RawMessage `json:"creator"`
	Federate           *json.RawMessage `json:"m.federate"`
	RoomVersion        *json.RawMessage `json:"room_version"`
	AdditionalCreators *json.RawMessage `json:"additional_creators"`
}

// derivedKey names the values auth keeps on an event with event.Derived. Every event sent to a
// room is checked against the same create and power levels events, so their content is parsed
// once per event rather than once per check.
type derivedKey struct {
	what    string
	version string // the room version the content was read under
}

type parsedCreate struct {
	c   createContent
	err error
}

// parseCreate reads the content of create. Its result is shared: callers must not modify it.
func parseCreate(create *event.Event) (createContent, error) {
	p := create.Derived(derivedKey{"create", create.Version().ID}, func() any {
		c, err := readCreate(create)
		return parsedCreate{c, err}
	}).(parsedCreate)
	return p.c, p.err
}

func readCreate(create *event.Event) (createContent, error) {
	v := create.Version()
	var r rawCreate
	if err := json.Unmarshal(create.Content(), &r); err != nil {
		return createContent{}, fmt.Errorf("%w: create content: %w", ErrInvalidPowerLevels, err)
	}
	c := createContent{federate: true, createdID: create.ID()}
	if r.Federate != nil && string(*r.Federate) == "false" {
		c.federate = false
	}
	if v.CreatorIsSender {
		c.creator = create.Sender()
	} else if r.Creator != nil {
		// A creator that is not a string names nobody.
		_ = json.Unmarshal(*r.Creator, &c.creator)
	}
	if v.PrivilegedCreators {
		c.creators = append(c.creators, create.Sender())
		extra, ok := additionalCreators(r.AdditionalCreators)
		if !ok {
			return createContent{}, fmt.Errorf("%w: create content: invalid additional_creators", ErrInvalidPowerLevels)
		}
		c.creators = append(c.creators, extra...)
	}
	return c, nil
}

// additionalCreators reads content.additional_creators; ok is false if it is present and not
// an array of valid user ids.
func additionalCreators(raw *json.RawMessage) ([]string, bool) {
	if raw == nil {
		return nil, true
	}
	var ids []string
	if err := json.Unmarshal(*raw, &ids); err != nil || ids == nil {
		return nil, false
	}
	for _, id := range ids {
		if !validUserID(id) {
			return nil, false
		}
	}
	return ids, true
}

// checkCreate is rule 1: the m.room.create event.
func checkCreate(e *event.Event) error {
	v := e.Version()
	if len(e.PrevEventIDs()) > 0 {
		return reject(RuleCreatePrevEvents)
	}
	if v.RoomIDFromCreateEvent {
		// event.Parse already refuses this, and gives the create event the room id derived
		// from its own id; the rule is kept for events made by other means.
		o, err := keys.ParseObject(e.JSON())
		if err != nil {
			return rejectf(RuleCreateHasRoomID, "%v", err)
		}
		if _, ok := o.Get("room_id"); ok {
			return reject(RuleCreateHasRoomID)
		}
	} else if domain(e.RoomID()) != string(e.SenderDomain()) {
		return rejectf(RuleCreateRoomIDDomain, "%s by %s", e.RoomID(), e.Sender())
	}
	var r rawCreate
	if err := json.Unmarshal(e.Content(), &r); err != nil {
		return rejectf(RuleCreateNoCreator, "content is not an object: %v", err)
	}
	if r.RoomVersion != nil {
		var id string
		if json.Unmarshal(*r.RoomVersion, &id) != nil {
			return reject(RuleCreateRoomVersion)
		}
		if _, err := event.Version(id); err != nil {
			return rejectf(RuleCreateRoomVersion, "%q", id)
		}
	}
	if !v.CreatorIsSender && r.Creator == nil {
		return reject(RuleCreateNoCreator) // presence is all the rule asks for

	}
	if v.PrivilegedCreators {
		if _, ok := additionalCreators(r.AdditionalCreators); !ok {
			return reject(RuleCreateAdditionalCreators)
		}
	}
	return nil
}
