package media

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/sirupsen/logrus"

	"myelin/mxhttp"
)

// An Authenticator says who sent a request: the user id of its access token on the client
// listener, the verified X-Matrix origin on the federation listener. Its error is rendered as is.
type Authenticator func(r *http.Request) (string, error)

// Mount sends the media paths to media and everything else to rest. Media has its own front door
// because an upload is far larger than the JSON body limit of the other endpoints.
func Mount(rest, media http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if strings.HasPrefix(p, "/_matrix/media/") || strings.HasPrefix(p, "/_matrix/client/v1/media/") ||
			strings.HasPrefix(p, "/_matrix/federation/v1/media/") {
			media.ServeHTTP(w, r)
			return
		}
		rest.ServeHTTP(w, r)
	})
}

// rawFunc is an endpoint that writes its own successful answer (media bytes) and returns an
// error only before writing anything, so that the error can still be rendered.
type rawFunc func(w http.ResponseWriter, r *http.Request) error

func raw(h rawFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			mxhttp.WriteError(w, r, err)
		}
	})
}

func newRouter() *mux.Router {
	r := mux.NewRouter()
	r.UseEncodedPath()
	r.NotFoundHandler = mxhttp.Handle(func(*http.Request) (mxhttp.Response, error) {
		return mxhttp.Response{}, mxhttp.Unrecognized("unrecognized request")
	})
	r.MethodNotAllowedHandler = mxhttp.Handle(func(*http.Request) (mxhttp.Response, error) {
		return mxhttp.Response{}, mxhttp.MethodNotAllowed()
	})
	return r
}

// ClientHandler serves the media endpoints of the Client-Server API.
func (s *Service) ClientHandler(auth Authenticator) http.Handler {
	r := newRouter()
	authed := func(h func(r *http.Request, user string) (mxhttp.Response, error)) http.Handler {
		return mxhttp.Handle(func(r *http.Request) (mxhttp.Response, error) {
			user, err := auth(r)
			if err != nil {
				return mxhttp.Response{}, err
			}
			return h(r, user)
		})
	}
	authedRaw := func(h rawFunc) http.Handler {
		return raw(func(w http.ResponseWriter, r *http.Request) error {
			if _, err := auth(r); err != nil {
				return err
			}
			return h(w, r)
		})
	}
	for _, v := range []string{"v3", "r0", "v1"} {
		mxhttp.Route(r, "/_matrix/media/"+v+"/upload").Handler(authed(s.handleUpload)).Methods(http.MethodPost)
	}
	mxhttp.Route(r, "/_matrix/media/v1/create").Handler(authed(s.handleCreate)).Methods(http.MethodPost)
	mxhttp.Route(r, "/_matrix/media/v3/upload/{serverName}/{mediaId}").Handler(authed(s.handleUploadTo)).Methods(http.MethodPut)
	for _, base := range []string{"/_matrix/client/v1/media", "/_matrix/media/v3", "/_matrix/media/r0"} {
		mxhttp.Route(r, base+"/config").Handler(authed(s.handleConfig)).Methods(http.MethodGet)
		mxhttp.Route(r, base+"/preview_url").Handler(authed(s.handlePreviewURL)).Methods(http.MethodGet)
	}
	const authedBase = "/_matrix/client/v1/media"
	mxhttp.Route(r, authedBase+"/download/{serverName}/{mediaId}").Handler(authedRaw(s.handleDownload(false))).Methods(http.MethodGet, http.MethodHead)
	mxhttp.Route(r, authedBase+"/download/{serverName}/{mediaId}/{fileName}").Handler(authedRaw(s.handleDownload(false))).Methods(http.MethodGet, http.MethodHead)
	mxhttp.Route(r, authedBase+"/thumbnail/{serverName}/{mediaId}").Handler(authedRaw(s.handleThumbnail(false))).Methods(http.MethodGet, http.MethodHead)
	s.legacyRoutes(r)
	return mxhttp.Middleware(s.log, s.cfg.MaxUploadSize+1)(mxhttp.CORS(r))
}

// legacyRoutes are the deprecated unauthenticated download endpoints, frozen for new media.
func (s *Service) legacyRoutes(r *mux.Router) {
	for _, base := range []string{"/_matrix/media/v3", "/_matrix/media/r0"} {
		mxhttp.Route(r, base+"/download/{serverName}/{mediaId}").Handler(raw(s.handleDownload(true))).Methods(http.MethodGet, http.MethodHead)
		mxhttp.Route(r, base+"/download/{serverName}/{mediaId}/{fileName}").Handler(raw(s.handleDownload(true))).Methods(http.MethodGet, http.MethodHead)
		mxhttp.Route(r, base+"/thumbnail/{serverName}/{mediaId}").Handler(raw(s.handleThumbnail(true))).Methods(http.MethodGet, http.MethodHead)
	}
}

// FederationHandler serves the media endpoints of the Server-Server API (and the deprecated
// unauthenticated download endpoints, which older servers ask on the federation port).
func (s *Service) FederationHandler(auth Authenticator) http.Handler {
	r := newRouter()
	authedRaw := func(h rawFunc) http.Handler {
		return raw(func(w http.ResponseWriter, r *http.Request) error {
			if _, err := auth(r); err != nil {
				return err
			}
			return h(w, r)
		})
	}
	mxhttp.Route(r, "/_matrix/federation/v1/media/download/{mediaId}").Handler(authedRaw(s.handleFederationDownload)).Methods(http.MethodGet)
	mxhttp.Route(r, "/_matrix/federation/v1/media/thumbnail/{mediaId}").Handler(authedRaw(s.handleFederationThumbnail)).Methods(http.MethodGet)
	s.legacyRoutes(r)
	return mxhttp.Middleware(s.log, 64<<10)(r)
}

func pathVar(r *http.Request, name string) string {
	v := mux.Vars(r)[name]
	if u, err := url.PathUnescape(v); err == nil {
		return u
	}
	return v
}

func uploadOf(r *http.Request, user string) upload {
	return upload{
		uploader: user, contentType: r.Header.Get("Content-Type"), filename: r.URL.Query().Get("filename"),
		body: r.Body, length: r.ContentLength,
	}
}

func (s *Service) handleUpload(r *http.Request, user string) (mxhttp.Response, error) {
	uri, err := s.upload(r.Context(), uploadOf(r, user))
	if err != nil {
		return mxhttp.Response{}, err
	}
	return mxhttp.OK(map[string]string{"content_uri": uri}), nil
}

func (s *Service) handleCreate(r *http.Request, user string) (mxhttp.Response, error) {
	uri, expires, err := s.create(r.Context(), user)
	if err != nil {
		return mxhttp.Response{}, err
	}
	return mxhttp.OK(map[string]any{"content_uri": uri, "unused_expires_at": expires}), nil
}

func (s *Service) handleUploadTo(r *http.Request, user string) (mxhttp.Response, error) {
	if err := s.uploadTo(r.Context(), pathVar(r, "serverName"), pathVar(r, "mediaId"), uploadOf(r, user)); err != nil {
		return mxhttp.Response{}, err
	}
	return mxhttp.Empty(), nil
}

func (s *Service) handleConfig(*http.Request, string) (mxhttp.Response, error) {
	return mxhttp.OK(map[string]any{"m.upload.size": s.cfg.MaxUploadSize}), nil
}

// lookupOf reads the parameters every download shares.
func lookupOf(r *http.Request, origin, mediaID string, legacy bool) (lookup, error) {
	q := r.URL.Query()
	l := lookup{origin: origin, mediaID: mediaID, allowRemote: true, wait: defaultWait, legacy: legacy}
	if v := q.Get("allow_remote"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return l, mxhttp.InvalidParam("allow_remote must be true or false")
		}
		l.allowRemote = b
	}
	if v := q.Get("timeout_ms"); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms < 0 {
			return l, mxhttp.InvalidParam("timeout_ms must be a non-negative integer")
		}
		l.wait = min(time.Duration(ms)*time.Millisecond, maxWait)
	}
	return l, nil
}

func (s *Service) handleDownload(legacy bool) rawFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		l, err := lookupOf(r, pathVar(r, "serverName"), pathVar(r, "mediaId"), legacy)
		if err != nil {
			return err
		}
		sv, err := s.download(r.Context(), l)
		if err != nil {
			return err
		}
		if name := pathVar(r, "fileName"); name != "" {
			sv.filename = name
		}
		serveContent(w, r, sv)
		return nil
	}
}

// thumbnailParams reads width, height and method.
func thumbnailParams(r *http.Request) (int, int, string, bool, error) {
	q := r.URL.Query()
	w, errW := strconv.Atoi(q.Get("width"))
	h, errH := strconv.Atoi(q.Get("height"))
	if errW != nil || errH != nil {
		return 0, 0, "", false, mxhttp.MissingParam("width and height must be integers")
	}
	var animated bool
	switch q.Get("animated") {
	case "", "false":
	case "true":
		animated = true
	default:
		return 0, 0, "", false, mxhttp.InvalidParam("animated must be true or false")
	}
	return w, h, q.Get("method"), animated, nil
}

func (s *Service) handleThumbnail(legacy bool) rawFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		l, err := lookupOf(r, pathVar(r, "serverName"), pathVar(r, "mediaId"), legacy)
		if err != nil {
			return err
		}
		width, height, method, animated, err := thumbnailParams(r)
		if err != nil {
			return err
		}
		sv, err := s.thumbnail(r.Context(), l, width, height, method, animated)
		if err != nil {
			return err
		}
		serveContent(w, r, sv)
		return nil
	}
}

// serveContent writes media with its safety headers; Range requests work, for video.
func serveContent(w http.ResponseWriter, r *http.Request, sv *servable) {
	defer sv.file.Close()
	setServeHeaders(w.Header(), sv.contentType, sv.filename)
	http.ServeContent(w, r, "", time.Time{}, sv.file)
}

func (s *Service) handleFederationDownload(w http.ResponseWriter, r *http.Request) error {
	l, err := lookupOf(r, s.cfg.ServerName, pathVar(r, "mediaId"), false)
	if err != nil {
		return err
	}
	l.allowRemote = false // only our own media is served to other servers
	sv, err := s.download(r.Context(), l)
	if err != nil {
		return err
	}
	return writeMultipart(w, r, sv)
}

func (s *Service) handleFederationThumbnail(w http.ResponseWriter, r *http.Request) error {
	l, err := lookupOf(r, s.cfg.ServerName, pathVar(r, "mediaId"), false)
	if err != nil {
		return err
	}
	l.allowRemote = false
	width, height, method, animated, err := thumbnailParams(r)
	if err != nil {
		return err
	}
	sv, err := s.thumbnail(r.Context(), l, width, height, method, animated)
	if err != nil {
		return err
	}
	return writeMultipart(w, r, sv)
}

// writeMultipart writes the federation media answer: multipart/mixed with an empty JSON
// metadata object and then the content (server-server content_repository.yaml).
func writeMultipart(w http.ResponseWriter, r *http.Request, sv *servable) error {
	defer sv.file.Close()
	var head bytes.Buffer
	mw := multipart.NewWriter(&head)
	meta, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/json"}})
	if err != nil {
		return mxhttp.Internal(err)
	}
	io.WriteString(meta, "{}")
	ph := textproto.MIMEHeader{}
	ph.Set("Content-Type", sv.contentType)
	ph.Set("Content-Disposition", contentDisposition(sv.contentType, sv.filename))
	if _, err := mw.CreatePart(ph); err != nil {
		return mxhttp.Internal(err)
	}
	tail := "\r\n--" + mw.Boundary() + "--\r\n"
	h := w.Header()
	h.Set("Content-Type", "multipart/mixed; boundary="+mw.Boundary())
	h.Set("Content-Length", strconv.FormatInt(int64(head.Len())+sv.size+int64(len(tail)), 10))
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(head.Bytes()); err != nil {
		return nil // the peer went away; nothing more to say
	}
	if n, err := io.Copy(w, sv.file); err != nil || n != sv.size {
		mxhttp.Logger(r.Context()).WithError(err).WithFields(logrus.Fields{"written": n, "size": sv.size}).
			Debug("media answer cut short")
		return nil
	}
	io.WriteString(w, tail)
	return nil
}
