package clientapi

import (
	"context"
	"encoding/json"
	"net/http"

	"myelin/mxhttp"
	"myelin/push"
)

// syncPushRules puts the user's push rules in the global account data of a /sync response as
// the m.push_rules event: on an initial sync always, on an incremental one when a change to
// the rules moved the account data stream (push.Store records each change as m.push_rules
// account data). The content is rendered from the push store rather than copied from the
// stored entry, so that the server's current default rules are the ones a client sees.
func (h *syncHandlers) syncPushRules(ctx context.Context, who Requester, initial bool, req syncRequest, resp *syncResponse) error {
	if !req.filter.AccountData.AllowsEvent(push.PushRulesAccountDataType, who.UserID) {
		return nil
	}
	at := -1
	for i, ev := range resp.AccountData.Events {
		if ev.Type == push.PushRulesAccountDataType {
			at = i
		}
	}
	if at < 0 && !initial {
		return nil
	}
	rs, err := h.cfg.PushRules.Rules(ctx, who.UserID)
	if err != nil {
		return err
	}
	content, err := push.AccountDataContent(rs)
	if err != nil {
		return err
	}
	ev := basicEvent{Type: push.PushRulesAccountDataType, Content: json.RawMessage(content)}
	if at >= 0 {
		resp.AccountData.Events[at] = ev
	} else {
		resp.AccountData.Events = append(resp.AccountData.Events, ev)
	}
	return nil
}

// pushRulesAccountData answers GET /user/{userId}/account_data/m.push_rules with the same
// content /sync hands out: the user's rules as they are now, defaults included.
func (h *syncHandlers) pushRulesAccountData(r *http.Request, who Requester) (mxhttp.Response, error) {
	rs, err := h.cfg.PushRules.Rules(r.Context(), who.UserID)
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	return mxhttp.OK(map[string]*push.Ruleset{"global": rs}), nil
}
