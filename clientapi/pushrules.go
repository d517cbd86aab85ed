package clientapi

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/gorilla/mux"

	"myelin/mxhttp"
	"myelin/push"
	"myelin/roomserver/event"
)

// Push rules (client-server API, "Push Rules: API"). The rules live in push.Store, which
// merges the spec's defaults with what the user changed and records each change as the
// user's m.push_rules account data; here the requests are read, checked and answered, and
// /sync is woken so the user's clients learn of the change.
//
// Choices the spec leaves open:
//   - a path or query parameter that names no kind, scope or rule form is M_INVALID_PARAM; a
//     body of the wrong shape (no actions, an unknown action, a condition without its
//     parameters, a content rule without a pattern) is M_BAD_JSON;
//   - before/after naming no user-defined rule of the kind is 400 M_UNKNOWN, as the spec's
//     example answers;
//   - creating a rule whose id starts with '.' and deleting a server-default rule are
//     M_INVALID_PARAM; an unknown rule is M_NOT_FOUND;
//   - override and underride rules without conditions are accepted: they match every event,
//     as the spec says of a rule with no conditions;
//   - the historical actions dont_notify and coalesce are accepted and stripped.

func (a *API) pushRuleRoutes(r *mux.Router) {
	handle := func(path string, f authedFunc, methods ...string) {
		mxhttp.Route(r, "/_matrix/client/v3/pushrules"+path).Handler(mxhttp.Handle(a.authed(f))).Methods(methods...)
	}
	handle("/", a.getPushRules, http.MethodGet)
	handle("/{scope}/", a.getPushRuleset, http.MethodGet)
	handle("/{scope}/{kind}/{ruleId}", a.getPushRule, http.MethodGet)
	handle("/{scope}/{kind}/{ruleId}", a.putPushRule, http.MethodPut)
	handle("/{scope}/{kind}/{ruleId}", a.deletePushRule, http.MethodDelete)
	handle("/{scope}/{kind}/{ruleId}/{attr}", a.getPushRuleAttr, http.MethodGet)
	handle("/{scope}/{kind}/{ruleId}/{attr}", a.putPushRuleAttr, http.MethodPut)
}

// pushRuleTarget is what a push rule path names.
type pushRuleTarget struct{ kind, ruleID string }

// pushScope checks the {scope} of the path: "global" is the only one the spec defines.
func pushScope(r *http.Request) error {
	if s := userDataVar(r, "scope"); s != "global" {
		return mxhttp.InvalidParam("unknown push rule scope %q: only global is defined", s)
	}
	return nil
}

// pushRuleTargetOf reads scope, kind and rule id from the path.
func pushRuleTargetOf(r *http.Request) (pushRuleTarget, error) {
	if err := pushScope(r); err != nil {
		return pushRuleTarget{}, err
	}
	t := pushRuleTarget{kind: userDataVar(r, "kind"), ruleID: userDataVar(r, "ruleId")}
	if !push.ValidKind(t.kind) {
		return t, mxhttp.InvalidParam("unknown push rule kind %q", t.kind)
	}
	if t.ruleID == "" {
		return t, mxhttp.InvalidParam("missing rule id")
	}
	return t, nil
}

func (a *API) getPushRules(r *http.Request, who Requester) (mxhttp.Response, error) {
	rs, err := a.cfg.PushRules.Rules(r.Context(), who.UserID)
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	return mxhttp.OK(map[string]*push.Ruleset{"global": rs}), nil
}

func (a *API) getPushRuleset(r *http.Request, who Requester) (mxhttp.Response, error) {
	if err := pushScope(r); err != nil {
		return mxhttp.Response{}, err
	}
	rs, err := a.cfg.PushRules.Rules(r.Context(), who.UserID)
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	return mxhttp.OK(rs), nil
}

func (a *API) getPushRule(r *http.Request, who Requester) (mxhttp.Response, error) {
	t, err := pushRuleTargetOf(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	rule, err := a.cfg.PushRules.Rule(r.Context(), who.UserID, t.kind, t.ruleID)
	if err != nil {
		return mxhttp.Response{}, pushRuleError(err)
	}
	return mxhttp.OK(rule), nil
}

func (a *API) putPushRule(r *http.Request, who Requester) (mxhttp.Response, error) {
	t, err := pushRuleTargetOf(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	if err := push.CheckRuleID(t.ruleID); err != nil {
		var invalid *push.InvalidRuleError
		if errors.As(err, &invalid) {
			return mxhttp.Response{}, mxhttp.InvalidParam("%s", invalid.Msg) // the id is in the path
		}
		return mxhttp.Response{}, pushRuleError(err)
	}
	switch t.kind {
	case push.KindRoom:
		if _, err := event.ParseRoomID(t.ruleID); err != nil {
			return mxhttp.Response{}, mxhttp.InvalidParam("the rule id of a room rule must be a room id").Because(err)
		}
	case push.KindSender:
		if _, err := event.ParseUserID(t.ruleID); err != nil {
			return mxhttp.Response{}, mxhttp.InvalidParam("the rule id of a sender rule must be a user id").Because(err)
		}
	}
	if err := a.allowUser("push_rules", who.Localpart); err != nil {
		return mxhttp.Response{}, err
	}
	var body struct {
		Actions    []json.RawMessage `json:"actions"`
		Conditions []push.Condition  `json:"conditions"`
		Pattern    *string           `json:"pattern"`
	}
	if err := mxhttp.ReadJSON(r, &body); err != nil {
		return mxhttp.Response{}, err
	}
	rule := push.Rule{RuleID: t.ruleID}
	if rule.Actions, err = push.NormalizeActions(body.Actions); err != nil {
		return mxhttp.Response{}, pushRuleError(err)
	}
	switch t.kind {
	case push.KindOverride, push.KindUnderride:
		if err := push.CheckConditions(body.Conditions); err != nil {
			return mxhttp.Response{}, pushRuleError(err)
		}
		rule.Conditions = body.Conditions
	case push.KindContent:
		if body.Pattern == nil {
			return mxhttp.Response{}, mxhttp.BadJSON("a content rule needs a pattern")
		}
		rule.Pattern = body.Pattern
	}
	q := r.URL.Query()
	err = a.cfg.PushRules.PutRule(r.Context(), who.UserID, t.kind, rule, q.Get("before"), q.Get("after"))
	if err != nil {
		return mxhttp.Response{}, pushRuleError(err)
	}
	a.cfg.SyncNotifier.UserChanged(who.UserID)
	return mxhttp.Empty(), nil
}

func (a *API) deletePushRule(r *http.Request, who Requester) (mxhttp.Response, error) {
	t, err := pushRuleTargetOf(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	if err := a.cfg.PushRules.DeleteRule(r.Context(), who.UserID, t.kind, t.ruleID); err != nil {
		return mxhttp.Response{}, pushRuleError(err)
	}
	a.cfg.SyncNotifier.UserChanged(who.UserID)
	return mxhttp.Empty(), nil
}

// pushRuleAttr reads the {attr} of the path: enabled or actions.
func pushRuleAttr(r *http.Request) (string, error) {
	switch attr := userDataVar(r, "attr"); attr {
	case "enabled", "actions":
		return attr, nil
	default:
		return "", mxhttp.InvalidParam("unknown push rule attribute %q", attr)
	}
}

func (a *API) getPushRuleAttr(r *http.Request, who Requester) (mxhttp.Response, error) {
	t, err := pushRuleTargetOf(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	attr, err := pushRuleAttr(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	rule, err := a.cfg.PushRules.Rule(r.Context(), who.UserID, t.kind, t.ruleID)
	if err != nil {
		return mxhttp.Response{}, pushRuleError(err)
	}
	if attr == "enabled" {
		return mxhttp.OK(map[string]bool{"enabled": rule.Enabled}), nil
	}
	if rule.Actions == nil {
		rule.Actions = []json.RawMessage{}
	}
	return mxhttp.OK(map[string][]json.RawMessage{"actions": rule.Actions}), nil
}

func (a *API) putPushRuleAttr(r *http.Request, who Requester) (mxhttp.Response, error) {
	t, err := pushRuleTargetOf(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	attr, err := pushRuleAttr(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	if attr == "enabled" {
		var body struct {
			Enabled *bool `json:"enabled"`
		}
		if err := mxhttp.ReadJSON(r, &body); err != nil {
			return mxhttp.Response{}, err
		}
		if body.Enabled == nil {
			return mxhttp.Response{}, mxhttp.BadJSON("enabled is required and must be a boolean")
		}
		err = a.cfg.PushRules.SetEnabled(r.Context(), who.UserID, t.kind, t.ruleID, *body.Enabled)
	} else {
		var body struct {
			Actions []json.RawMessage `json:"actions"`
		}
		if err := mxhttp.ReadJSON(r, &body); err != nil {
			return mxhttp.Response{}, err
		}
		actions, nerr := push.NormalizeActions(body.Actions)
		if nerr != nil {
			return mxhttp.Response{}, pushRuleError(nerr)
		}
		err = a.cfg.PushRules.SetActions(r.Context(), who.UserID, t.kind, t.ruleID, actions)
	}
	if err != nil {
		return mxhttp.Response{}, pushRuleError(err)
	}
	a.cfg.SyncNotifier.UserChanged(who.UserID)
	return mxhttp.Empty(), nil
}

// pushRuleError answers the push store's errors with the spec's codes.
func pushRuleError(err error) error {
	var invalid *push.InvalidRuleError
	switch {
	case errors.As(err, &invalid):
		return mxhttp.BadJSON("%s", invalid.Msg)
	case errors.Is(err, push.ErrNotFound):
		return mxhttp.NotFound("the push rule was not found")
	case errors.Is(err, push.ErrDefaultRule):
		return mxhttp.InvalidParam("rule ids starting with '.' are reserved for server-default rules, which cannot be created, replaced or deleted")
	case errors.Is(err, push.ErrRelativeNotFound):
		e := mxhttp.Internal(err)
		e.Status, e.Message = http.StatusBadRequest, "before/after rule not found: "+relativeName(err)
		return e
	}
	return mxhttp.Internal(err)
}

// relativeName is the message of a before/after error without the package's prefix.
func relativeName(err error) string {
	msg := err.Error()
	prefix := push.ErrRelativeNotFound.Error() + ": "
	if len(msg) > len(prefix) && msg[:len(prefix)] == prefix {
		return msg[len(prefix):]
	}
	return msg
}
