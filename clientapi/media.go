package clientapi

import "net/http"

// AuthenticateUser resolves a request's access token to its user id, for the media repository,
// which has its own front door (uploads exceed this API's body limit) but the same tokens.
func (a *API) AuthenticateUser(r *http.Request) (string, error) {
	who, err := a.authenticate(r)
	if err != nil {
		return "", err
	}
	return who.UserID, nil
}
