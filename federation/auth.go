package federation

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"

	"myelin/keys"
	"myelin/mxhttp"
)

type originKey struct{}

// OriginFromContext returns the server name that signed the request, as verified by the
// X-Matrix check every authenticated federation route passes through, or "".
func OriginFromContext(ctx context.Context) string {
	origin, _ := ctx.Value(originKey{}).(string)
	return origin
}

// authed wraps a federation handler with request authentication: the X-Matrix Authorization
// headers must name us as destination (when they name one), come from one origin, and every
// signature must verify with a current key of the origin. The handler then finds the origin in
// the context and the body, already read, in r.Body.
func (s *Server) authed(h mxhttp.HandlerFunc) http.Handler {
	return mxhttp.Handle(func(r *http.Request) (mxhttp.Response, error) {
		// The headers are checked before the body is read, so that an unauthenticated sender
		// cannot make us read a large body.
		headers, err := s.authHeaders(r)
		if err != nil {
			return mxhttp.Response{}, err
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return mxhttp.Response{}, mxhttp.TooLarge("request body exceeds %d bytes", mbe.Limit)
			}
			return mxhttp.Response{}, mxhttp.BadJSON("could not read request body").Because(err)
		}
		origin, err := s.verifyRequest(r, headers, body)
		if err != nil {
			return mxhttp.Response{}, err
		}
		if s.cfg.Contacted != nil {
			s.cfg.Contacted(origin)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		ctx := context.WithValue(r.Context(), originKey{}, origin)
		ctx = mxhttp.WithLogger(ctx, mxhttp.Logger(ctx).WithField("origin", origin))
		return h(r.WithContext(ctx))
	})
}

// authHeaders parses the X-Matrix Authorization headers of r: at least one, all from one valid
// origin, each for us when it names a destination.
func (s *Server) authHeaders(r *http.Request) ([]XMatrix, error) {
	var headers []XMatrix
	for _, v := range r.Header.Values("Authorization") {
		if !hasXMatrixScheme(v) {
			continue // another scheme; only X-Matrix headers count
		}
		x, err := ParseXMatrix(v)
		if err != nil {
			return nil, mxhttp.Unauthorized("malformed X-Matrix Authorization header").Because(err)
		}
		headers = append(headers, x)
	}
	if len(headers) == 0 {
		return nil, mxhttp.Unauthorized("missing X-Matrix Authorization header")
	}
	origin := headers[0].Origin
	if !validServerName(origin) {
		return nil, mxhttp.Unauthorized("invalid origin in X-Matrix Authorization header")
	}
	for _, x := range headers {
		if x.Origin != origin {
			return nil, mxhttp.Unauthorized("X-Matrix Authorization headers name different origins")
		}
		// Senders older than v1.3 omit destination; they signed it all the same.
		if x.Destination != "" && x.Destination != s.cfg.ServerName {
			return nil, mxhttp.Unauthorized("request is for %s, not this server", x.Destination)
		}
	}
	return headers, nil
}

// verifyRequest checks the signature of every X-Matrix header over the request and returns the
// verified origin. Every signature must verify with a current key of the origin.
func (s *Server) verifyRequest(r *http.Request, headers []XMatrix, body []byte) (string, error) {
	if s.cfg.KeyRing == nil {
		return "", mxhttp.Unauthorized("this server cannot verify requests")
	}
	origin := headers[0].Origin
	if len(body) > 0 {
		if _, err := keys.CanonicalJSON(body); err != nil {
			return "", mxhttp.NotJSON("request body is not valid JSON")
		}
	}
	// The signature covers the request target exactly as it was sent.
	uri := r.RequestURI
	if uri == "" {
		uri = r.URL.RequestURI()
	}
	for _, x := range headers {
		pub, err := s.cfg.KeyRing.RequestKey(r.Context(), origin, x.KeyID)
		if err != nil {
			return "", mxhttp.Unauthorized("cannot verify the request signature: no valid key %s of %s", x.KeyID, origin).Because(err)
		}
		if err := VerifyRequest(x, s.cfg.ServerName, pub, r.Method, uri, body); err != nil {
			return "", mxhttp.Unauthorized("request signature does not verify").Because(err)
		}
	}
	return origin, nil
}

func hasXMatrixScheme(v string) bool {
	return len(v) >= 9 && (v[8] == ' ' || v[8] == '\t') && bytes.EqualFold([]byte(v[:8]), []byte("X-Matrix"))
}
