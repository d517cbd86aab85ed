package federation

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"sync"

	"github.com/gorilla/mux"

	"myelin/keys"
	"myelin/mxhttp"
)

const (
	// maxNotaryServers bounds one batch query: each server may cost an outbound fetch.
	maxNotaryServers = 100
	// notaryFetchParallelism bounds the outbound fetches one batch query makes at a time.
	notaryFetchParallelism = 8
)

// keyQueryResponse is keys_query_response.yaml.
type keyQueryResponse struct {
	ServerKeys []json.RawMessage `json:"server_keys"`
}

// queryKeysOne is GET /_matrix/key/v2/query/{serverName}.
func (s *Server) queryKeysOne(r *http.Request) (mxhttp.Response, error) {
	server, err := url.PathUnescape(mux.Vars(r)["serverName"])
	if err != nil || !validServerName(server) {
		return mxhttp.Response{}, mxhttp.InvalidParam("invalid server name")
	}
	minValid := s.now().UnixMilli()
	if v := r.URL.Query().Get("minimum_valid_until_ts"); v != "" {
		if minValid, err = strconv.ParseInt(v, 10, 64); err != nil {
			return mxhttp.Response{}, mxhttp.InvalidParam("minimum_valid_until_ts must be an integer")
		}
	}
	docs, err := s.notarise(r, server, minValid)
	if err != nil {
		return mxhttp.Response{}, err
	}
	return mxhttp.OK(keyQueryResponse{ServerKeys: docs}), nil
}

// queryKeys is POST /_matrix/key/v2/query.
func (s *Server) queryKeys(r *http.Request) (mxhttp.Response, error) {
	var req struct {
		ServerKeys map[string]map[string]struct {
			MinimumValidUntilTS int64 `json:"minimum_valid_until_ts"`
		} `json:"server_keys"`
	}
	if err := mxhttp.ReadJSON(r, &req); err != nil {
		return mxhttp.Response{}, err
	}
	if req.ServerKeys == nil {
		return mxhttp.Response{}, mxhttp.BadJSON("server_keys is required")
	}
	if len(req.ServerKeys) > maxNotaryServers {
		return mxhttp.Response{}, mxhttp.InvalidParam("at most %d servers may be queried at once", maxNotaryServers)
	}
	now := s.now().UnixMilli()
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		out  = keyQueryResponse{ServerKeys: []json.RawMessage{}}
		errs []error
		sem  = make(chan struct{}, notaryFetchParallelism)
	)
	for server, criteria := range req.ServerKeys {
		if !validServerName(server) {
			continue // nothing to say about a name that cannot exist
		}
		minValid := int64(0)
		for _, c := range criteria {
			minValid = max(minValid, c.MinimumValidUntilTS)
		}
		if minValid == 0 {
			minValid = now
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			docs, err := s.notarise(r, server, minValid)
			mu.Lock()
			defer mu.Unlock()
			out.ServerKeys = append(out.ServerKeys, docs...)
			if err != nil {
				errs = append(errs, err)
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return mxhttp.Response{}, errs[0]
	}
	return mxhttp.OK(out), nil
}

// notarise returns the key documents of server, each countersigned by us. Our own document is
// already signed by us.
func (s *Server) notarise(r *http.Request, server string, minValid int64) ([]json.RawMessage, error) {
	if server == s.cfg.ServerName {
		doc, err := s.KeyDocument()
		if err != nil {
			return nil, mxhttp.Internal(err)
		}
		return []json.RawMessage{doc}, nil
	}
	if s.cfg.KeyRing == nil {
		return []json.RawMessage{}, nil
	}
	docs, err := s.cfg.KeyRing.KeyDocuments(r.Context(), server, minValid)
	if err != nil {
		return nil, mxhttp.Internal(err)
	}
	out := make([]json.RawMessage, 0, len(docs))
	for _, doc := range docs {
		signed, err := keys.SignJSON(s.cfg.ServerName, s.cfg.SigningKey.ID, s.cfg.SigningKey.Private, doc)
		if err != nil {
			return nil, mxhttp.Internal(err)
		}
		out = append(out, signed)
	}
	return out, nil
}

// query is GET /_matrix/federation/v1/query/{queryType}: it dispatches to Config.Queries.
func (s *Server) query(r *http.Request) (mxhttp.Response, error) {
	h, ok := s.cfg.Queries[mux.Vars(r)["queryType"]]
	if !ok {
		return mxhttp.Response{}, mxhttp.Unrecognized("unknown query type")
	}
	return h(r)
}
