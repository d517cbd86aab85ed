package export

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"myelin/storage"
)

// The account and the user's settings: small files read in one query each.

type accountJSON struct {
	UserID        string `json:"user_id"`
	CreatedTS     int64  `json:"created_ts"`
	Admin         bool   `json:"admin"`
	HasPassword   bool   `json:"has_password"`
	Deactivated   bool   `json:"deactivated"`
	DeactivatedTS int64  `json:"deactivated_ts,omitempty"`
	Locked        bool   `json:"locked"`
	Suspended     bool   `json:"suspended"`
	// Consent is every policy version the user accepted (m.login.terms at registration).
	Consent []consentJSON `json:"consent"`
}

type consentJSON struct {
	Policy     string `json:"policy"`
	Version    string `json:"version"`
	AcceptedTS int64  `json:"accepted_ts"`
}

func (e *exporter) writeAccount(ctx context.Context) error {
	a, err := storage.GetAccount(ctx, e.opts.DB, e.localpart)
	if err != nil {
		return fmt.Errorf("export: reading the account: %w", err)
	}
	rs, err := storage.GetAccountRestrictions(ctx, e.opts.DB, e.localpart)
	if err != nil {
		return fmt.Errorf("export: reading the account: %w", err)
	}
	consent, err := storage.ConsentOf(ctx, e.opts.DB, e.localpart)
	if err != nil {
		return fmt.Errorf("export: reading the account: %w", err)
	}
	accepted := make([]consentJSON, 0, len(consent))
	for _, c := range consent {
		accepted = append(accepted, consentJSON{Policy: c.PolicyID, Version: c.Version, AcceptedTS: c.AcceptedTS})
	}
	// Whether a password is set is the user's to know; the hash itself never leaves the server.
	return e.writeJSON("account.json", "the account: creation time, admin flag, deactivated, locked and suspended flags, policy versions accepted", accountJSON{
		UserID: e.userID, CreatedTS: a.CreatedTS, Admin: a.IsAdmin, HasPassword: a.PasswordHash != "",
		Deactivated: a.DeactivatedTS != 0, DeactivatedTS: a.DeactivatedTS, Locked: rs.Locked, Suspended: rs.Suspended,
		Consent: accepted,
	})
}

type profileJSON struct {
	DisplayName string                     `json:"displayname,omitempty"`
	AvatarURL   string                     `json:"avatar_url,omitempty"`
	Fields      map[string]json.RawMessage `json:"fields,omitempty"`
}

func (e *exporter) writeProfile(ctx context.Context) error {
	p, err := storage.GetProfile(ctx, e.opts.DB, e.localpart)
	if err != nil {
		return fmt.Errorf("export: reading the profile: %w", err)
	}
	fields, err := storage.ProfileFields(ctx, e.opts.DB, e.localpart)
	if err != nil {
		return fmt.Errorf("export: reading profile fields: %w", err)
	}
	return e.writeJSON("profile.json", "display name, avatar and custom profile fields",
		profileJSON{DisplayName: p.DisplayName, AvatarURL: p.AvatarURL, Fields: fields})
}

type deviceJSON struct {
	DeviceID    string `json:"device_id"`
	DisplayName string `json:"display_name,omitempty"`
	CreatedTS   int64  `json:"created_ts"`
	LastSeenTS  int64  `json:"last_seen_ts"`
	LastSeenIP  string `json:"last_seen_ip,omitempty"`
}

func (e *exporter) writeDevices(ctx context.Context) error {
	devs, err := storage.ListDevices(ctx, e.opts.DB, e.localpart)
	if err != nil {
		return err
	}
	out := make([]deviceJSON, 0, len(devs))
	for _, d := range devs {
		out = append(out, deviceJSON{DeviceID: d.DeviceID, DisplayName: d.DisplayName, CreatedTS: d.CreatedTS,
			LastSeenTS: d.LastSeenTS, LastSeenIP: d.LastSeenIP})
	}
	return e.writeJSON("devices.json", "logged-in devices (last_seen_ip only where the server stores it); never their tokens", out)
}

type accountDataJSON struct {
	Global map[string]json.RawMessage            `json:"global"`
	Rooms  map[string]map[string]json.RawMessage `json:"rooms"`
}

func (e *exporter) writeAccountData(ctx context.Context) error {
	all, err := storage.AllAccountData(ctx, e.opts.DB, e.userID)
	if err != nil {
		return err
	}
	out := accountDataJSON{Global: map[string]json.RawMessage{}, Rooms: map[string]map[string]json.RawMessage{}}
	for _, d := range all {
		if d.RoomID == "" {
			out.Global[d.Type] = d.Content
			continue
		}
		if out.Rooms[d.RoomID] == nil {
			out.Rooms[d.RoomID] = map[string]json.RawMessage{}
		}
		out.Rooms[d.RoomID][d.Type] = d.Content
	}
	return e.writeJSON("account_data.json", "account data by type, global and per room, as the clients stored it", out)
}

type pushRuleJSON struct {
	Kind       string          `json:"kind"`
	RuleID     string          `json:"rule_id"`
	Position   int64           `json:"position"`
	Enabled    *bool           `json:"enabled,omitempty"`
	Actions    json.RawMessage `json:"actions,omitempty"`
	Conditions json.RawMessage `json:"conditions,omitempty"`
	Pattern    *string         `json:"pattern,omitempty"`
}

func (e *exporter) writePushRules(ctx context.Context) error {
	rows, err := storage.PushRuleRows(ctx, e.opts.DB, e.userID)
	if err != nil {
		return err
	}
	out := make([]pushRuleJSON, 0, len(rows))
	for _, r := range rows {
		out = append(out, pushRuleJSON{Kind: r.Kind, RuleID: r.RuleID, Position: r.Position, Enabled: r.Enabled,
			Actions: r.Actions, Conditions: r.Conditions, Pattern: r.Pattern})
	}
	return e.writeJSON("push_rules.json",
		"the user's own push rules and their changes to the server-default ones (rule ids starting with '.'); unchanged defaults are not listed", out)
}

type pusherJSON struct {
	Kind              string          `json:"kind"`
	AppID             string          `json:"app_id"`
	PushKey           string          `json:"pushkey"`
	PushKeyTS         int64           `json:"pushkey_ts"`
	AppDisplayName    string          `json:"app_display_name"`
	DeviceDisplayName string          `json:"device_display_name"`
	ProfileTag        string          `json:"profile_tag,omitempty"`
	Lang              string          `json:"lang"`
	Data              json.RawMessage `json:"data"`
	DeviceID          string          `json:"device_id"`
}

func (e *exporter) writePushers(ctx context.Context) error {
	ps, err := storage.PushersOfUser(ctx, e.opts.DB, e.userID)
	if err != nil {
		return err
	}
	out := make([]pusherJSON, 0, len(ps))
	for _, p := range ps {
		out = append(out, pusherJSON{Kind: p.Kind, AppID: p.AppID, PushKey: p.PushKey, PushKeyTS: p.PushKeyTS,
			AppDisplayName: p.AppDisplayName, DeviceDisplayName: p.DeviceDisplayName, ProfileTag: p.ProfileTag,
			Lang: p.Lang, Data: p.Data, DeviceID: p.DeviceID})
	}
	return e.writeJSON("pushers.json", "the push gateways the user's devices registered", out)
}

func (e *exporter) writeFilters(ctx context.Context) error {
	fs, err := storage.UserFilters(ctx, e.opts.DB, e.userID)
	if err != nil {
		return err
	}
	out := make(map[string]json.RawMessage, len(fs))
	for _, f := range fs {
		out[strconv.FormatInt(f.ID, 10)] = f.Filter
	}
	return e.writeJSON("filters.json", "the /sync filters the user's clients uploaded, by filter id", out)
}

type aliasJSON struct {
	Alias     string `json:"alias"`
	RoomID    string `json:"room_id"`
	CreatedTS int64  `json:"created_ts"`
}

func (e *exporter) writeAliases(ctx context.Context) error {
	as, err := storage.RoomAliasesBy(ctx, e.opts.DB, e.userID)
	if err != nil {
		return err
	}
	out := make([]aliasJSON, 0, len(as))
	for _, a := range as {
		out = append(out, aliasJSON{Alias: a.Alias, RoomID: a.RoomID, CreatedTS: a.CreatedTS})
	}
	return e.writeJSON("aliases.json", "the room aliases the user created", out)
}

type receiptJSON struct {
	RoomID   string `json:"room_id"`
	Type     string `json:"receipt_type"`
	ThreadID string `json:"thread_id,omitempty"`
	EventID  string `json:"event_id"`
	TS       int64  `json:"ts"`
}

func (e *exporter) writeReceipts(ctx context.Context) error {
	rs, err := storage.ReceiptsOfUser(ctx, e.opts.DB, e.userID)
	if err != nil {
		return err
	}
	out := make([]receiptJSON, 0, len(rs))
	for _, r := range rs {
		out = append(out, receiptJSON{RoomID: r.RoomID, Type: r.Type, ThreadID: r.ThreadID, EventID: r.EventID, TS: r.TS})
	}
	return e.writeJSON("receipts.json", "the latest read receipts the user sent, public and private", out)
}

type reportJSON struct {
	ID         string `json:"id"`
	Kind       string `json:"kind"`
	RoomID     string `json:"room_id,omitempty"`
	EventID    string `json:"event_id,omitempty"`
	UserID     string `json:"user_id,omitempty"`
	Reason     string `json:"reason"`
	Score      *int64 `json:"score,omitempty"`
	ReceivedTS int64  `json:"received_ts"`
}

func (e *exporter) writeReports(ctx context.Context) error {
	rs, err := storage.ContentReportsBy(ctx, e.opts.DB, e.userID)
	if err != nil {
		return err
	}
	out := make([]reportJSON, 0, len(rs))
	for _, r := range rs {
		out = append(out, reportJSON{ID: r.ID, Kind: r.Kind, RoomID: r.RoomID, EventID: r.EventID,
			UserID: r.TargetUserID, Reason: r.Reason, Score: r.Score, ReceivedTS: r.ReceivedTS})
	}
	return e.writeJSON("reports.json", "the content reports the user sent to the administrators", out)
}

type openIDJSON struct {
	Count     int     `json:"count"`
	ExpiresTS []int64 `json:"expires_ts"`
}

func (e *exporter) writeOpenID(ctx context.Context) error {
	ts, err := storage.OpenIDTokenExpiries(ctx, e.opts.DB, e.userID)
	if err != nil {
		return err
	}
	if ts == nil {
		ts = []int64{}
	}
	return e.writeJSON("openid_tokens.json", "how many OpenID tokens the user holds and when they expire (never the tokens)",
		openIDJSON{Count: len(ts), ExpiresTS: ts})
}
