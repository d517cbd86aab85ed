// Package bench drives a Matrix homeserver through the Client-Server API only, so that the same
// run measures Myelin and any other server: it registers its own users, builds rooms, and times
// the requests that a scenario names.
package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// MatrixError is an error response of the Client-Server API.
type MatrixError struct {
	Status       int
	ErrCode      string `json:"errcode"`
	Message      string `json:"error"`
	RetryAfterMS int64  `json:"retry_after_ms"`
	// Body is the raw response, kept for User-Interactive Authentication (a 401 with flows).
	Body []byte `json:"-"`
}

func (e *MatrixError) Error() string {
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.ErrCode, e.Message)
}

// ErrTooManyRetries is returned when a request stays rate limited after every retry.
var ErrTooManyRetries = errors.New("still rate limited after retries")

// Server is one homeserver's client API as seen by the load generator.
type Server struct {
	BaseURL string
	HTTP    *http.Client
	// RequestTimeout bounds every request except long-polls, which get their own timeout plus this.
	RequestTimeout time.Duration
	// RateLimited counts M_LIMIT_EXCEEDED answers; a benchmark that saw any is not comparable.
	RateLimited atomic.Int64
}

// NewServer returns a Server for the client API at baseURL.
func NewServer(baseURL string, timeout time.Duration) *Server {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// Concurrent senders each keep a connection; the default of 2 idle connections per host would
	// make the benchmark measure TCP handshakes.
	tr.MaxIdleConnsPerHost = 256
	tr.MaxIdleConns = 256
	return &Server{
		BaseURL:        strings.TrimRight(baseURL, "/"),
		HTTP:           &http.Client{Transport: tr},
		RequestTimeout: timeout,
	}
}

const maxRateLimitRetries = 20

// do sends one request and decodes a JSON answer into out (when non-nil). A 429 M_LIMIT_EXCEEDED is
// retried after the server's retry_after_ms, at most maxRateLimitRetries times; the wait counts in
// the caller's latency, which is why RateLimited is reported next to every result.
func (s *Server) do(ctx context.Context, method, path, token string, body, out any, extra time.Duration) error {
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return err
		}
	}
	for attempt := 0; ; attempt++ {
		err := s.once(ctx, method, path, token, raw, out, extra)
		var mErr *MatrixError
		if !errors.As(err, &mErr) || mErr.Status != http.StatusTooManyRequests {
			return err
		}
		s.RateLimited.Add(1)
		if attempt >= maxRateLimitRetries {
			return fmt.Errorf("%s %s: %w", method, path, ErrTooManyRetries)
		}
		wait := time.Duration(mErr.RetryAfterMS) * time.Millisecond
		if wait <= 0 {
			wait = time.Second
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

func (s *Server) once(ctx context.Context, method, path, token string, raw []byte, out any, extra time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, s.RequestTimeout+extra)
	defer cancel()
	var rd io.Reader
	if raw != nil {
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.BaseURL+path, rd)
	if err != nil {
		return err
	}
	if raw != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: reading body: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		mErr := &MatrixError{Status: resp.StatusCode, Body: data}
		_ = json.Unmarshal(data, mErr)
		if mErr.RetryAfterMS == 0 {
			if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
				mErr.RetryAfterMS = int64(secs) * 1000
			}
		}
		if mErr.Message == "" {
			mErr.Message = truncate(string(data), 200)
		}
		return fmt.Errorf("%s %s: %w", method, path, mErr)
	}
	if out == nil {
		return nil
	}
	if b, ok := out.(*[]byte); ok {
		*b = data
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decoding answer: %w", method, path, err)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// User is a registered account with one logged-in device.
type User struct {
	Server      *Server
	UserID      string
	DeviceID    string
	AccessToken string
	Password    string
	txn         atomic.Int64
}

// ServerName is the part of the user id after the first colon: the homeserver's name.
func (u *User) ServerName() string {
	_, name, _ := strings.Cut(u.UserID, ":")
	return name
}

func (u *User) do(ctx context.Context, method, path string, body, out any) error {
	return u.Server.do(ctx, method, path, u.AccessToken, body, out, 0)
}

// CreateRoom creates a public room (anyone may join) and returns its id.
func (u *User) CreateRoom(ctx context.Context, name string) (string, error) {
	var out struct {
		RoomID string `json:"room_id"`
	}
	err := u.do(ctx, http.MethodPost, "/_matrix/client/v3/createRoom",
		map[string]any{"preset": "public_chat", "name": name}, &out)
	if err == nil && out.RoomID == "" {
		err = errors.New("createRoom: no room_id in the answer")
	}
	return out.RoomID, err
}

// Join joins a room by id; via names the servers to join through (for a room on another server).
func (u *User) Join(ctx context.Context, roomID string, via ...string) error {
	path := "/_matrix/client/v3/join/" + url.PathEscape(roomID)
	if len(via) > 0 {
		q := url.Values{"server_name": via}
		path += "?" + q.Encode()
	}
	return u.do(ctx, http.MethodPost, path, map[string]any{}, nil)
}

// SendText sends an m.room.message and returns its event id.
func (u *User) SendText(ctx context.Context, roomID, body string) (string, error) {
	txn := fmt.Sprintf("b%d-%d", time.Now().UnixNano(), u.txn.Add(1))
	path := "/_matrix/client/v3/rooms/" + url.PathEscape(roomID) + "/send/m.room.message/" + txn
	var out struct {
		EventID string `json:"event_id"`
	}
	err := u.do(ctx, http.MethodPut, path, map[string]any{"msgtype": "m.text", "body": body}, &out)
	if err == nil && out.EventID == "" {
		err = errors.New("send: no event_id in the answer")
	}
	return out.EventID, err
}

// SyncResponse is the part of a /sync answer the scenarios read.
type SyncResponse struct {
	NextBatch string `json:"next_batch"`
	Rooms     struct {
		Join map[string]struct {
			Timeline struct {
				Events []struct {
					EventID string `json:"event_id"`
					Type    string `json:"type"`
				} `json:"events"`
			} `json:"timeline"`
			State struct {
				Events []json.RawMessage `json:"events"`
			} `json:"state"`
		} `json:"join"`
	} `json:"rooms"`
	// Size is the length of the answer in bytes.
	Size int `json:"-"`
}

// HasEvent reports whether the timeline of roomID holds eventID.
func (r *SyncResponse) HasEvent(roomID, eventID string) bool {
	for _, ev := range r.Rooms.Join[roomID].Timeline.Events {
		if ev.EventID == eventID {
			return true
		}
	}
	return false
}

// Sync calls /sync. since may be empty (initial sync); filter is inline filter JSON or empty;
// timeout is the long-poll time.
func (u *User) Sync(ctx context.Context, since, filter string, timeout time.Duration) (*SyncResponse, error) {
	q := url.Values{"timeout": {strconv.FormatInt(timeout.Milliseconds(), 10)}}
	if since != "" {
		q.Set("since", since)
	}
	if filter != "" {
		q.Set("filter", filter)
	}
	var raw []byte
	if err := u.Server.do(ctx, http.MethodGet, "/_matrix/client/v3/sync?"+q.Encode(), u.AccessToken, nil, &raw, timeout); err != nil {
		return nil, err
	}
	out := &SyncResponse{Size: len(raw)}
	if err := json.Unmarshal(raw, out); err != nil {
		return nil, fmt.Errorf("decoding /sync: %w", err)
	}
	if out.NextBatch == "" {
		return nil, errors.New("/sync: no next_batch")
	}
	return out, nil
}

// Raw sends any authenticated request; keys scenarios use it for /keys/*.
func (u *User) Raw(ctx context.Context, method, path string, body, out any) error {
	return u.do(ctx, method, path, body, out)
}
