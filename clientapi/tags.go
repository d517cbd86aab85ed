package clientapi

import (
	"encoding/json"
	"errors"
	"net/http"

	"myelin/mxhttp"
	"myelin/roomserver/event"
	"myelin/storage"
)

// Room tagging (client-server API "Room Tagging"). A room's tags are its m.tag room account
// data, {"tags": {name: {order: 0.5}}}, so that /sync hands them out with the rest of the room's
// account data. The server checks what the spec states (a tag name of at most 255 bytes, an
// order in [0,1]) and keeps any other field of a tag as given.

const maxTagLength = 255

// tagContent is the content of an m.tag account data event.
type tagContent struct {
	Tags map[string]map[string]json.RawMessage `json:"tags"`
}

// tagTarget reads and checks {userId}, {roomId} and, when withTag, {tag}.
func tagTarget(r *http.Request, who Requester, withTag bool) (roomID, tag string, err error) {
	if err := requireOwnUser(r, who); err != nil {
		return "", "", mxhttp.Forbidden("cannot access the tags of another user")
	}
	roomID = userDataVar(r, "roomId")
	if _, err := event.ParseRoomID(roomID); err != nil {
		return "", "", mxhttp.InvalidParam("%q is not a room id", roomID)
	}
	if withTag {
		tag = userDataVar(r, "tag")
		if tag == "" {
			return "", "", mxhttp.InvalidParam("missing tag")
		}
		if len(tag) > maxTagLength {
			return "", "", mxhttp.InvalidParam("a tag name is at most %d bytes", maxTagLength)
		}
	}
	return roomID, tag, nil
}

// readTags returns the m.tag content of a room for a user; none stored is no tags.
func readTags(r *http.Request, db storage.Reader, userID, roomID string) (tagContent, error) {
	c := tagContent{}
	d, err := storage.GetAccountData(r.Context(), db, userID, roomID, "m.tag")
	if errors.Is(err, storage.ErrNotFound) {
		c.Tags = map[string]map[string]json.RawMessage{}
		return c, nil
	}
	if err != nil {
		return c, err
	}
	// Stored through the account data endpoint, m.tag may hold anything: what is not a tag map
	// is treated as no tags rather than failing every tag request for the room.
	if json.Unmarshal(d.Content, &c) != nil || c.Tags == nil {
		c.Tags = map[string]map[string]json.RawMessage{}
	}
	return c, nil
}

// getTags is GET /user/{userId}/rooms/{roomId}/tags.
func (a *API) getTags(r *http.Request, who Requester) (mxhttp.Response, error) {
	roomID, _, err := tagTarget(r, who, false)
	if err != nil {
		return mxhttp.Response{}, err
	}
	c, err := readTags(r, a.db, who.UserID, roomID)
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	return mxhttp.OK(c), nil
}

// putTag is PUT /user/{userId}/rooms/{roomId}/tags/{tag}.
func (a *API) putTag(r *http.Request, who Requester) (mxhttp.Response, error) {
	roomID, tag, err := tagTarget(r, who, true)
	if err != nil {
		return mxhttp.Response{}, err
	}
	var body map[string]json.RawMessage
	if err := mxhttp.ReadJSON(r, &body); err != nil {
		return mxhttp.Response{}, err
	}
	if body == nil {
		return mxhttp.Response{}, mxhttp.BadJSON("the tag must be a JSON object")
	}
	if raw, ok := body["order"]; ok {
		var order float64
		if json.Unmarshal(raw, &order) != nil {
			return mxhttp.Response{}, mxhttp.BadJSON("order must be a number")
		}
		if order < 0 || order > 1 {
			return mxhttp.Response{}, mxhttp.InvalidParam("order must be between 0 and 1")
		}
	}
	return a.changeTags(r, who, roomID, func(tags map[string]map[string]json.RawMessage) bool {
		tags[tag] = body
		return true
	})
}

// deleteTag is DELETE /user/{userId}/rooms/{roomId}/tags/{tag}. Removing a tag the room does
// not have succeeds, as in Synapse: the room ends up without it either way.
func (a *API) deleteTag(r *http.Request, who Requester) (mxhttp.Response, error) {
	roomID, tag, err := tagTarget(r, who, true)
	if err != nil {
		return mxhttp.Response{}, err
	}
	return a.changeTags(r, who, roomID, func(tags map[string]map[string]json.RawMessage) bool {
		if _, ok := tags[tag]; !ok {
			return false
		}
		delete(tags, tag)
		return true
	})
}

// changeTags applies change to the room's tags and stores them as m.tag in one transaction,
// so that two concurrent tag changes cannot lose one another. change reports whether it
// changed anything; if not, nothing is written and /sync sees nothing.
func (a *API) changeTags(r *http.Request, who Requester, roomID string, change func(map[string]map[string]json.RawMessage) bool) (mxhttp.Response, error) {
	changed := false
	err := a.db.WithTx(r.Context(), func(tx *storage.Tx) error {
		c, err := readTags(r, tx, who.UserID, roomID)
		if err != nil {
			return err
		}
		if changed = change(c.Tags); !changed {
			return nil
		}
		raw, err := json.Marshal(c)
		if err != nil {
			return err
		}
		_, err = tx.SetAccountData(r.Context(), who.UserID, roomID, "m.tag", raw)
		return err
	})
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	if changed {
		a.cfg.SyncNotifier.UserChanged(who.UserID)
	}
	return mxhttp.Empty(), nil
}
