package media

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

// What a failed preview logs never names the URL a user asked about.
func TestPreviewErrorsHideTheURL(t *testing.T) {
	err := &url.Error{Op: "Get", URL: "https://secret.example/private-page", Err: errors.New("connection refused")}
	e := previewFailed(err)
	if strings.Contains(e.Cause.Error(), "secret.example") || !strings.Contains(e.Cause.Error(), "connection refused") {
		t.Fatalf("cause %q", e.Cause)
	}
	if got := withoutURL(errors.New("plain")); got.Error() != "plain" {
		t.Fatalf("plain error changed: %v", got)
	}
}
