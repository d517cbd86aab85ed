package mxhttp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/sirupsen/logrus"
)

// A Response is a successful answer: a status and a body encoded as JSON.
type Response struct {
	Status int
	Body   any
}

// OK is a 200 with a JSON body.
func OK(body any) Response { return Response{Status: http.StatusOK, Body: body} }

// Empty is a 200 with {}.
func Empty() Response { return OK(struct{}{}) }

// HandlerFunc is the shape of every JSON endpoint.
type HandlerFunc func(r *http.Request) (Response, error)

// Handle adapts a HandlerFunc: it writes the response, or renders and logs the error. 5xx are
// logged at error level with their cause, 4xx at debug.
func Handle(h HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := h(r)
		if err != nil {
			WriteError(w, r, err)
			return
		}
		WriteJSON(w, resp.Status, resp.Body)
	})
}

// WriteError renders err as a Matrix error response.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	e := AsError(err)
	log := Logger(r.Context()).WithFields(logrus.Fields{"errcode": e.Code, "status": e.Status})
	switch {
	case errors.Is(r.Context().Err(), context.Canceled):
		// The client hung up; nothing to report and nobody to answer.
		log.Debug("client went away")
		return
	case e.Status >= 500:
		log.WithError(e.Cause).Error(e.Message)
	default:
		if e.Cause != nil {
			log = log.WithError(e.Cause)
		}
		log.Debug(e.Message)
	}
	e.headers(w.Header())
	WriteJSON(w, e.Status, e.body())
}

// WriteJSON writes a JSON body with a status.
func WriteJSON(w http.ResponseWriter, status int, body any) {
	b, err := json.Marshal(body)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"errcode":"M_UNKNOWN","error":"internal server error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// ReadJSON decodes a size-limited request body into v. Invalid JSON is M_NOT_JSON; valid JSON of
// the wrong shape is M_BAD_JSON; a body over the limit is M_TOO_LARGE.
func ReadJSON(r *http.Request, v any) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return TooLarge("request body exceeds %d bytes", mbe.Limit)
		}
		return BadJSON("could not read request body").Because(err)
	}
	return DecodeJSON(body, v)
}

// DecodeJSON is ReadJSON for a body already in memory.
func DecodeJSON(body []byte, v any) error {
	if !json.Valid(body) {
		return NotJSON("request body is not valid JSON")
	}
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return BadJSON("%s has the wrong type: expected %s", te.Field, te.Type)
		}
		return BadJSON("request body has the wrong shape").Because(err)
	}
	return nil
}

type ctxKey int

const (
	loggerKey ctxKey = iota
	requestIDKey
)

// Logger returns the request's logger, with its request id and any fields added on the way.
func Logger(ctx context.Context) *logrus.Entry {
	if l, ok := ctx.Value(loggerKey).(*logrus.Entry); ok {
		return l
	}
	return logrus.NewEntry(logrus.StandardLogger())
}

// WithLogger returns a context carrying l.
func WithLogger(ctx context.Context, l *logrus.Entry) context.Context {
	return context.WithValue(ctx, loggerKey, l)
}

// RequestID returns the request id of ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// Middleware gives every request an id (echoed in X-Request-Id), a logger carrying it, and a body
// size limit. It logs each request at debug level without query strings, which can hold tokens.
func Middleware(base *logrus.Entry, maxBody int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id := newRequestID()
			log := base.WithField("request_id", id)
			ctx := context.WithValue(WithLogger(r.Context(), log), requestIDKey, id)
			w.Header().Set("X-Request-Id", id)
			if r.Body != nil {
				r.Body = http.MaxBytesReader(w, r.Body, maxBody)
			}
			log.WithFields(logrus.Fields{"method": r.Method, "path": redactPath(r.URL.Path)}).Debug("request")
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// redactPath keeps the shape of a path for logs while hiding the parts that can identify people
// (user ids, room aliases): anything with a sigil is replaced.
func redactPath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		if len(s) > 0 && strings.ContainsAny(s[:1], "@#%") {
			parts[i] = "…"
		}
	}
	return strings.Join(parts, "/")
}

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
