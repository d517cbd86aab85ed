package sytest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// Client drives a server's Client-Server API as one logged-in device (or anonymously, with no
// token).
type Client struct {
	Base     string
	Token    string
	UserID   string
	DeviceID string
}

// Reply is a decoded JSON response.
type Reply struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    []byte
}

// Str returns a string field of the body, "" if absent.
func (r Reply) Str(key string) string { s, _ := r.Body[key].(string); return s }

// Do sends a request; body is JSON-encoded unless it is a string or []byte, sent as is.
func (c *Client) Do(t *testing.T, method, path string, body any) Reply {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, c.Base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := Reply{Status: resp.StatusCode, Header: resp.Header, Raw: raw}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out.Body); err != nil {
			t.Fatalf("%s %s: response is not a JSON object: %v: %s", method, path, err, raw)
		}
	}
	return out
}

// Must sends a request and fails the test unless the status is want.
func (c *Client) Must(t *testing.T, want int, method, path string, body any) Reply {
	t.Helper()
	r := c.Do(t, method, path, body)
	if r.Status != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, want, r.Raw)
	}
	return r
}

// MustErr sends a request and fails the test unless it is refused with status and errcode.
func (c *Client) MustErr(t *testing.T, status int, errcode, method, path string, body any) Reply {
	t.Helper()
	r := c.Do(t, method, path, body)
	if r.Status != status || r.Str("errcode") != errcode {
		t.Fatalf("%s %s: got %d %s, want %d %s: %s", method, path, r.Status, r.Str("errcode"), status, errcode, r.Raw)
	}
	return r
}

// Anonymous returns a client without a token.
func Anonymous(s *Server) *Client { return &Client{Base: s.ClientURL} }

// Register creates an account through the dummy flow of open registration and returns its
// logged-in client.
func Register(t *testing.T, s *Server, username, password string) *Client {
	t.Helper()
	c := Anonymous(s)
	body := map[string]any{"username": username, "password": password}
	first := c.Must(t, 401, "POST", "/_matrix/client/v3/register", body)
	body["auth"] = map[string]any{"type": "m.login.dummy", "session": first.Str("session")}
	r := c.Must(t, 200, "POST", "/_matrix/client/v3/register", body)
	return &Client{Base: s.ClientURL, Token: r.Str("access_token"), UserID: r.Str("user_id"), DeviceID: r.Str("device_id")}
}

// Login logs a new device in with a password; extra fields are merged into the request.
func Login(t *testing.T, s *Server, user, password string, extra map[string]any) (*Client, Reply) {
	t.Helper()
	body := map[string]any{
		"type":       "m.login.password",
		"identifier": map[string]any{"type": "m.id.user", "user": user},
		"password":   password,
	}
	for k, v := range extra {
		body[k] = v
	}
	r := Anonymous(s).Must(t, 200, "POST", "/_matrix/client/v3/login", body)
	return &Client{Base: s.ClientURL, Token: r.Str("access_token"), UserID: r.Str("user_id"), DeviceID: r.Str("device_id")}, r
}
