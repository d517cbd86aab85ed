// Package mxhttp is what the client and federation front doors share: the Matrix error envelope,
// strict size-limited JSON bodies, the request id and the request's logger. Handlers return
// (Response, error) and one function writes either.
package mxhttp

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// An Error is a failure with everything needed to answer it: the HTTP status, the Matrix errcode,
// a message the client may see, and the internal cause, which is logged and never sent.
type Error struct {
	Status  int
	Code    string
	Message string
	// Extra holds additional top-level response fields (retry_after_ms, soft_logout, room_version).
	Extra map[string]any
	Cause error
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("%s (%d): %s: %v", e.Code, e.Status, e.Message, e.Cause)
	}
	return fmt.Sprintf("%s (%d): %s", e.Code, e.Status, e.Message)
}

func (e *Error) Unwrap() error { return e.Cause }

// With returns a copy of e carrying an extra response field.
func (e *Error) With(key string, value any) *Error {
	c := *e
	c.Extra = map[string]any{key: value}
	for k, v := range e.Extra {
		c.Extra[k] = v
	}
	c.Extra[key] = value
	return &c
}

// Because returns a copy of e that records an internal cause.
func (e *Error) Because(cause error) *Error {
	c := *e
	c.Cause = cause
	return &c
}

func newError(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Constructors for the errcodes of the spec, at their documented statuses.
func Unrecognized(format string, a ...any) *Error {
	return newError(http.StatusNotFound, "M_UNRECOGNIZED", format, a...)
}
func MethodNotAllowed() *Error {
	return newError(http.StatusMethodNotAllowed, "M_UNRECOGNIZED", "method not allowed")
}
func NotFound(format string, a ...any) *Error {
	return newError(http.StatusNotFound, "M_NOT_FOUND", format, a...)
}
func Forbidden(format string, a ...any) *Error {
	return newError(http.StatusForbidden, "M_FORBIDDEN", format, a...)
}
func NotJSON(format string, a ...any) *Error {
	return newError(http.StatusBadRequest, "M_NOT_JSON", format, a...)
}
func BadJSON(format string, a ...any) *Error {
	return newError(http.StatusBadRequest, "M_BAD_JSON", format, a...)
}
func InvalidParam(format string, a ...any) *Error {
	return newError(http.StatusBadRequest, "M_INVALID_PARAM", format, a...)
}
func MissingParam(format string, a ...any) *Error {
	return newError(http.StatusBadRequest, "M_MISSING_PARAM", format, a...)
}
func TooLarge(format string, a ...any) *Error {
	return newError(http.StatusRequestEntityTooLarge, "M_TOO_LARGE", format, a...)
}
func MissingToken() *Error {
	return newError(http.StatusUnauthorized, "M_MISSING_TOKEN", "missing access token")
}
func UnknownToken(softLogout bool) *Error {
	return newError(http.StatusUnauthorized, "M_UNKNOWN_TOKEN", "unknown or expired access token").With("soft_logout", softLogout)
}
func Unauthorized(format string, a ...any) *Error {
	return newError(http.StatusUnauthorized, "M_UNAUTHORIZED", format, a...)
}

// LimitExceeded answers a rate-limited request with both the Retry-After header (spec v1.10) and
// the deprecated retry_after_ms field that older clients still read.
func LimitExceeded(retryAfter time.Duration) *Error {
	return newError(http.StatusTooManyRequests, "M_LIMIT_EXCEEDED", "too many requests").With("retry_after_ms", retryAfter.Milliseconds())
}

// Internal wraps an unexpected failure: the client sees a generic message, the log the cause.
func Internal(cause error) *Error {
	return &Error{Status: http.StatusInternalServerError, Code: "M_UNKNOWN", Message: "internal server error", Cause: cause}
}

// AsError turns any error into an *Error; anything not already one is internal.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return Internal(err)
}

func (e *Error) body() map[string]any {
	b := make(map[string]any, 2+len(e.Extra))
	for k, v := range e.Extra {
		b[k] = v
	}
	b["errcode"] = e.Code
	b["error"] = e.Message
	return b
}

func (e *Error) headers(h http.Header) {
	if ms, ok := e.Extra["retry_after_ms"].(int64); ok && e.Status == http.StatusTooManyRequests {
		h.Set("Retry-After", strconv.FormatInt((ms+999)/1000, 10))
	}
}
