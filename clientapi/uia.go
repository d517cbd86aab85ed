package clientapi

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"slices"
	"time"

	"myelin/clientapi/account"
	"myelin/mxhttp"
	"myelin/storage"
)

// The User-Interactive Authentication stages this server offers.
const (
	stagePassword          = "m.login.password"
	stageDummy             = "m.login.dummy"
	stageRegistrationToken = "m.login.registration_token"
	stageTerms             = "m.login.terms"
)

// uiaSessionLifetime bounds how long a client may take to complete the stages of one request.
const uiaSessionLifetime = 30 * time.Minute

// uiaDataRegistrationToken keys the hash of the registration token a session presented.
const uiaDataRegistrationToken = "registration_token_hash"

// uiaSpec is what one endpoint asks of User-Interactive Authentication.
type uiaSpec struct {
	// operation names the request, so that a session completed for one cannot authorise another.
	operation string
	// localpart is the user who must authenticate, when known from the access token; empty for
	// registration, and for password changes and deactivation without an access token (the
	// password stage then decides who it is).
	localpart string
	flows     [][]string
	// params is the challenge's params object, by stage; nil: {}.
	params map[string]any
	// data is stored in a new session, for its stages to read (what the challenge presented).
	data map[string]string
}

// authDict is the auth object of a request.
type authDict struct {
	Type       string          `json:"type"`
	Session    string          `json:"session"`
	Identifier *userIdentifier `json:"identifier"`
	User       string          `json:"user"` // deprecated m.login.password form
	Password   string          `json:"password"`
	Token      string          `json:"token"`
}

// userIdentifier is the identifier object of login and of the password stage.
type userIdentifier struct {
	Type string `json:"type"`
	User string `json:"user"`
}

// uiaChallenge is the 401 body that asks for (more) authentication.
type uiaChallenge struct {
	Errcode   string         `json:"errcode,omitempty"`
	Error     string         `json:"error,omitempty"`
	Flows     []uiaFlow      `json:"flows"`
	Params    map[string]any `json:"params"`
	Session   string         `json:"session"`
	Completed []string       `json:"completed,omitempty"`
}

type uiaFlow struct {
	Stages []string `json:"stages"`
}

// interactiveAuth runs one round of User-Interactive Authentication for a request whose auth
// object is raw. When a flow is complete it returns the session, which the caller deletes in the
// transaction that performs the request (finishUIA). Otherwise it returns the 401 response to
// send: a challenge, with errcode and error when a stage attempt failed.
func (a *API) interactiveAuth(r *http.Request, raw json.RawMessage, spec uiaSpec) (*storage.UIASession, *mxhttp.Response, error) {
	ctx := r.Context()
	var auth authDict
	if len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &auth); err != nil {
			return nil, nil, mxhttp.BadJSON("auth has the wrong shape")
		}
	}
	now := a.now()
	var session storage.UIASession
	if auth.Session == "" {
		session = storage.UIASession{
			ID: account.NewToken(""), Operation: spec.operation, Localpart: spec.localpart,
			CreatedTS: now.UnixMilli(), ExpiresTS: now.Add(uiaSessionLifetime).UnixMilli(),
			Data: maps.Clone(spec.data),
		}
		if err := a.db.WithTx(ctx, func(tx *storage.Tx) error { return tx.InsertUIASession(ctx, session) }); err != nil {
			return nil, nil, mxhttp.Internal(err)
		}
		if auth.Type == "" {
			return nil, challenge(spec, session, nil), nil
		}
	} else {
		var err error
		session, err = storage.GetUIASession(ctx, a.db, auth.Session, now.UnixMilli())
		if errors.Is(err, storage.ErrNotFound) {
			return nil, nil, &mxhttp.Error{Status: http.StatusBadRequest, Code: "M_UNKNOWN", Message: "unknown or expired auth session"}
		}
		if err != nil {
			return nil, nil, mxhttp.Internal(err)
		}
		if session.Operation != spec.operation || (spec.localpart != "" && session.Localpart != "" && session.Localpart != spec.localpart) {
			return nil, nil, mxhttp.Forbidden("the auth session was started for a different request")
		}
		if session.Localpart == "" {
			// A session begun without an access token and continued with one authenticates
			// the token's user, not whoever's password comes next.
			session.Localpart = spec.localpart
		}
	}

	// A stage already completed is not run again: the spec has the server answer with the
	// completed stages or with the result.
	if auth.Type != "" && !slices.Contains(session.Completed, auth.Type) {
		if !offered(spec.flows, auth.Type) {
			return nil, challenge(spec, session, &mxhttp.Error{Code: "M_UNRECOGNIZED", Message: "this authentication type is not offered here"}), nil
		}
		failure, err := a.runStage(ctx, &session, spec, auth)
		if err != nil {
			return nil, nil, err
		}
		if failure != nil {
			return nil, challenge(spec, session, failure), nil
		}
		session.Completed = append(session.Completed, auth.Type)
		if err := a.db.WithTx(ctx, func(tx *storage.Tx) error { return tx.UpdateUIASession(ctx, session) }); err != nil {
			return nil, nil, mxhttp.Internal(err)
		}
	}
	for _, f := range spec.flows {
		if containsAll(session.Completed, f) {
			return &session, nil, nil
		}
	}
	return nil, challenge(spec, session, nil), nil
}

// runStage attempts one stage. A failed attempt the client may retry is returned as failure.
func (a *API) runStage(ctx context.Context, s *storage.UIASession, spec uiaSpec, auth authDict) (failure *mxhttp.Error, err error) {
	switch auth.Type {
	case stageDummy:
		return nil, nil
	case stagePassword:
		user := auth.User
		if auth.Identifier != nil {
			if auth.Identifier.Type != "m.id.user" {
				return mxhttp.Forbidden("only m.id.user identifiers are supported"), nil
			}
			user = auth.Identifier.User
		}
		localpart, err := a.accounts.LocalpartOf(user)
		if err != nil || user == "" {
			return mxhttp.Forbidden("invalid user name or password"), nil
		}
		if want := s.Localpart; want != "" && want != localpart {
			return mxhttp.Forbidden("the password stage must authenticate the user making the request"), nil
		}
		if err := a.allowUser("password", localpart); err != nil {
			return nil, err
		}
		err = a.accounts.CheckCredentials(ctx, localpart, auth.Password)
		if errors.Is(err, account.ErrBadCredentials) {
			return mxhttp.Forbidden("invalid user name or password"), nil
		}
		if err != nil {
			return nil, mxhttp.Internal(err)
		}
		s.Localpart = localpart
		return nil, nil
	case stageRegistrationToken:
		valid := false
		if validRegistrationToken(auth.Token) {
			valid, err = storage.RegistrationTokenValid(ctx, a.db, account.HashToken(auth.Token), a.now().UnixMilli())
			if err != nil {
				return nil, mxhttp.Internal(err)
			}
		}
		if !valid {
			return mxhttp.Unauthorized("invalid registration token"), nil
		}
		if s.Data == nil {
			s.Data = map[string]string{}
		}
		s.Data[uiaDataRegistrationToken] = account.HashToken(auth.Token)
		return nil, nil
	case stageTerms:
		// The client sends only the type and session: that the user accepted every policy the
		// challenge presented (consent.go).
		acceptTerms(s, spec)
		return nil, nil
	}
	return &mxhttp.Error{Code: "M_UNRECOGNIZED", Message: "unsupported authentication type"}, nil
}

// finishUIA ends a completed session within the transaction that performed the request.
func finishUIA(ctx context.Context, tx *storage.Tx, s *storage.UIASession) error {
	return tx.DeleteUIASession(ctx, s.ID)
}

func challenge(spec uiaSpec, s storage.UIASession, failure *mxhttp.Error) *mxhttp.Response {
	c := uiaChallenge{Params: spec.params, Session: s.ID, Completed: s.Completed}
	if c.Params == nil {
		c.Params = map[string]any{}
	}
	for _, f := range spec.flows {
		c.Flows = append(c.Flows, uiaFlow{Stages: f})
	}
	if failure != nil {
		c.Errcode, c.Error = failure.Code, failure.Message
	}
	return &mxhttp.Response{Status: http.StatusUnauthorized, Body: c}
}

func offered(flows [][]string, stage string) bool {
	for _, f := range flows {
		if slices.Contains(f, stage) {
			return true
		}
	}
	return false
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// validRegistrationToken checks the opaque identifier grammar, at most 64 characters, before
// the token touches the database.
func validRegistrationToken(t string) bool {
	if t == "" || len(t) > 64 {
		return false
	}
	for _, c := range []byte(t) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
		if !ok {
			return false
		}
	}
	return true
}
