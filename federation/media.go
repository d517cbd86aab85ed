package federation

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"

	"myelin/mxhttp"
)

// What the media repository (package media) needs from federation: the X-Matrix check for its
// inbound endpoints, and outbound requests whose answers it streams instead of reading whole.

// maxMediaRedirects bounds the redirects GetURL follows.
const maxMediaRedirects = 5

// AuthenticateOrigin verifies the X-Matrix signature of a request to a federation endpoint that
// is served outside this Server's router (the media endpoints), and returns the origin.
func (s *Server) AuthenticateOrigin(r *http.Request) (string, error) {
	headers, err := s.authHeaders(r)
	if err != nil {
		return "", err
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return "", mxhttp.TooLarge("request body exceeds %d bytes", mbe.Limit)
		}
		return "", mxhttp.BadJSON("could not read request body").Because(err)
	}
	origin, err := s.verifyRequest(r, headers, body)
	if err != nil {
		return "", err
	}
	if s.cfg.Contacted != nil {
		s.cfg.Contacted(origin)
	}
	return origin, nil
}

// GetMedia sends a signed GET to destination and returns its answer, whatever the status, for
// the caller to stream and close. uri is the path and query. Connections follow the client's
// private address rule.
func (c *Client) GetMedia(ctx context.Context, destination, uri string) (*http.Response, error) {
	if _, _, err := splitServerName(destination); err != nil {
		return nil, err
	}
	dest, err := c.resolver.Resolve(ctx, destination)
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", destination, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+destination+uri, nil)
	if err != nil {
		return nil, fmt.Errorf("request to %s: %w", destination, err)
	}
	req.Host = dest.Host
	x, err := SignRequest(c.serverName, destination, c.key, http.MethodGet, req.URL.RequestURI(), nil)
	if err != nil {
		return nil, fmt.Errorf("signing request to %s: %w", destination, err)
	}
	req.Header.Set("Authorization", x.String())
	return c.http.Do(req)
}

// GetURL fetches a URL with a plain, unsigned GET (a media redirect target, a URL preview),
// following at most maxMediaRedirects redirects. Every connection, redirects included, is
// checked after DNS resolution against the client's private address rule, and TLS is verified
// against the same roots as federation. The caller closes the body.
func (c *Client) GetURL(ctx context.Context, url string) (*http.Response, error) {
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: dialTimeout, Control: c.checkDialAddress}).DialContext,
		TLSClientConfig:       c.tlsConfig.Clone(),
		ResponseHeaderTimeout: c.timeout,
		DisableKeepAlives:     true,
	}
	client := &http.Client{
		Transport: transport,
		Timeout:   0, // the caller's context bounds the whole fetch, body included
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxMediaRedirects {
				return fmt.Errorf("stopped after %d redirects", maxMediaRedirects)
			}
			if req.URL.Scheme != "https" && req.URL.Scheme != "http" {
				return fmt.Errorf("redirect to a %s URL", req.URL.Scheme)
			}
			return nil
		},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if req.URL.Scheme != "https" && req.URL.Scheme != "http" {
		return nil, fmt.Errorf("refusing to fetch a %s URL", req.URL.Scheme)
	}
	req.Header.Set("User-Agent", "Myelin/"+Version)
	return client.Do(req)
}
