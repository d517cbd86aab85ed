package federation

import (
	"net/http"

	"myelin/mxhttp"
)

// sendLeaveV2 is PUT /_matrix/federation/v2/send_leave/{roomId}/{eventId}.
func (s *Server) sendLeaveV2(r *http.Request) (mxhttp.Response, error) {
	if _, err := s.acceptMembership(r, "leave"); err != nil {
		return mxhttp.Response{}, err
	}
	return mxhttp.Empty(), nil
}

// sendLeaveV1 is PUT /_matrix/federation/v1/send_leave/{roomId}/{eventId}, answered with the
// historical [200, {}].
func (s *Server) sendLeaveV1(r *http.Request) (mxhttp.Response, error) {
	if _, err := s.acceptMembership(r, "leave"); err != nil {
		return mxhttp.Response{}, err
	}
	return mxhttp.OK([]any{http.StatusOK, struct{}{}}), nil
}
