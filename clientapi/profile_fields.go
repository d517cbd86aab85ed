package clientapi

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"

	"myelin/mxhttp"
	"myelin/storage"
)

// Profile fields beyond displayname and avatar_url (spec v1.16): m.tz and custom keys in the
// namespaced identifier grammar, any JSON value (m.tz a string), kept in profile_fields. The
// whole profile, as JSON, is at most maxProfileBytes and a key at most maxProfileKeyBytes, as
// the spec sets; null values are stored, as it recommends, not taken as deletions.

const (
	maxProfileBytes    = 64 * 1024
	maxProfileKeyBytes = 255
)

var profileKeyRE = regexp.MustCompile(`^(avatar_url|displayname|m\.tz|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+)$`)

// checkProfileKey refuses a key the spec's grammar does not allow.
func checkProfileKey(key string) error {
	if len(key) > maxProfileKeyBytes {
		return &mxhttp.Error{Status: http.StatusBadRequest, Code: "M_KEY_TOO_LARGE",
			Message: "a profile key is at most 255 bytes"}
	}
	if !profileKeyRE.MatchString(key) {
		return mxhttp.InvalidParam("invalid profile key: use displayname, avatar_url, m.tz or a namespaced key such as org.example.field")
	}
	return nil
}

// isCustomProfileKey reports whether key is kept in profile_fields rather than profiles.
func isCustomProfileKey(key string) bool { return key != "displayname" && key != "avatar_url" }

// fullProfile is a local user's whole profile: displayname, avatar_url and the other fields.
func fullProfile(ctx context.Context, r storage.Reader, localpart string) (map[string]any, error) {
	p, err := storage.GetProfile(ctx, r, localpart)
	if err != nil {
		return nil, err
	}
	out := profileFields(p)
	custom, err := storage.ProfileFields(ctx, r, localpart)
	if err != nil {
		return nil, err
	}
	for k, v := range custom {
		out[k] = v
	}
	return out, nil
}

// checkProfileSize refuses a change that would make the profile larger than the spec allows;
// value nil is a deletion. It runs inside the transaction that makes the change.
func checkProfileSize(ctx context.Context, tx *storage.Tx, localpart, key string, value any) error {
	prof, err := fullProfile(ctx, tx, localpart)
	if err != nil {
		return err
	}
	if value == nil {
		delete(prof, key)
	} else {
		prof[key] = value
	}
	raw, err := json.Marshal(prof)
	if err != nil {
		return err
	}
	if len(raw) > maxProfileBytes {
		return &mxhttp.Error{Status: http.StatusBadRequest, Code: "M_PROFILE_TOO_LARGE",
			Message: "the profile would exceed 64 KiB"}
	}
	return nil
}

// setCustomProfileField stores a field other than displayname and avatar_url.
func (a *API) setCustomProfileField(ctx context.Context, who Requester, key string, raw json.RawMessage) (mxhttp.Response, error) {
	if key == "m.tz" && string(raw) != "null" {
		var tz string
		if json.Unmarshal(raw, &tz) != nil {
			return mxhttp.Response{}, mxhttp.InvalidParam("m.tz must be a string")
		}
	}
	err := a.db.WithTx(ctx, func(tx *storage.Tx) error {
		if err := checkProfileSize(ctx, tx, who.Localpart, key, raw); err != nil {
			return err
		}
		return tx.SetProfileField(ctx, who.Localpart, key, raw)
	})
	if err != nil {
		return mxhttp.Response{}, mxhttp.AsError(err)
	}
	return mxhttp.Empty(), nil
}

// deleteCustomProfileField removes a field other than displayname and avatar_url; removing
// one that is not set succeeds, as the spec says.
func (a *API) deleteCustomProfileField(ctx context.Context, who Requester, key string) (mxhttp.Response, error) {
	err := a.db.WithTx(ctx, func(tx *storage.Tx) error { return tx.DeleteProfileField(ctx, who.Localpart, key) })
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	return mxhttp.Empty(), nil
}
