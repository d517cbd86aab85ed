package federation

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

type presenceRecorder struct{ got []string }

func (p *presenceRecorder) RemotePresence(_ context.Context, userID, presence string, statusMsg *string, ago int64, active bool) error {
	msg := "-"
	if statusMsg != nil {
		msg = *statusMsg
	}
	b, _ := json.Marshal([]any{userID, presence, msg, ago, active})
	p.got = append(p.got, string(b))
	return nil
}

// Only well-formed updates about users of the origin reach the sink.
func TestPresenceEDU(t *testing.T) {
	long := strings.Repeat("é", maxStatusMsgLength) // 2 bytes each
	content := `{"push":[
		{"user_id":"@a:origin","presence":"online","status_msg":"hi","last_active_ago":5000,"currently_active":true},
		{"user_id":"@b:elsewhere","presence":"online","last_active_ago":1},
		{"user_id":"@c:origin","presence":"asleep","last_active_ago":1},
		{"user_id":"@d:origin","presence":"unavailable"},
		"not an object",
		{"user_id":"@e:origin","presence":"offline","status_msg":"` + long + `","last_active_ago":-3}
	]}`
	rec := &presenceRecorder{}
	if err := PresenceEDU(rec).HandleEDU(context.Background(), "origin", json.RawMessage(content)); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`["@a:origin","online","hi",5000,true]`,
		`["@d:origin","unavailable","-",-1,false]`,
		`["@e:origin","offline","` + strings.Repeat("é", maxStatusMsgLength/2) + `",-1,false]`,
	}
	if strings.Join(rec.got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(rec.got, "\n"), strings.Join(want, "\n"))
	}
	if err := PresenceEDU(rec).HandleEDU(context.Background(), "origin", json.RawMessage(`{"push":{}}`)); err == nil {
		t.Error("a push that is not a list was taken")
	}
}
