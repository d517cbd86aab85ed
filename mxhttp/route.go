package mxhttp

import (
	"net/http"
	"strings"

	"github.com/gorilla/mux"
)

// Route adds a route for the path template tpl (gorilla/mux syntax, default variable patterns
// only) to r. The router tries its routes in turn, and each path match is a regular expression
// over the escaped path: with the client API's few hundred routes that was 5 to 7 % of the
// server's work in the send benchmark (issue 9). Route puts a cheaper check first: the path has
// the template's number of segments, and its literal ones. It only ever rejects paths the
// regular expression would reject too, so what matches, which variables are extracted and the
// 404 and 405 answers are gorilla/mux's. The router must use UseEncodedPath, as ours do, and
// nothing may rewrite a request's URL.Path before routing without its RawPath (routingPath).
func Route(r *mux.Router, tpl string) *mux.Route {
	if strings.Contains(tpl, ":") && strings.Contains(tpl, "{") {
		return r.Path(tpl) // a variable with its own pattern may span segments
	}
	want := strings.Split(tpl, "/")
	return r.NewRoute().MatcherFunc(func(req *http.Request, _ *mux.RouteMatch) bool {
		return segmentsMatch(want, routingPath(req))
	}).Path(tpl)
}

// routingPath is the path as the router sees it with UseEncodedPath, cheaply: URL.RawPath is
// set exactly when the escaped form differs from the default escaping of URL.Path, which never
// changes where a path splits into segments nor a segment made only of unreserved characters,
// as every literal segment of our templates is.
func routingPath(req *http.Request) string {
	if req.URL.RawPath != "" {
		return req.URL.RawPath
	}
	return req.URL.Path
}

// segmentsMatch reports whether path has as many segments as the template's and the same
// literal ones; a segment with a variable matches any.
func segmentsMatch(tpl []string, path string) bool {
	for i, seg := range tpl {
		j := strings.IndexByte(path, '/')
		if i == len(tpl)-1 {
			if j >= 0 {
				return false // more segments than the template
			}
			j = len(path)
		} else if j < 0 {
			return false
		}
		if !strings.Contains(seg, "{") && path[:j] != seg {
			return false
		}
		if i < len(tpl)-1 {
			path = path[j+1:]
		}
	}
	return true
}
