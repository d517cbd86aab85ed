package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"myelin/clientapi"
	"myelin/config"
	"myelin/federation"
	"myelin/keys"
	"myelin/keys/e2e"
	"myelin/media"
	"myelin/mxhttp"
	"myelin/push"
	"myelin/push/pusher"
	"myelin/roomserver"
	"myelin/storage"
)

// shutdownGrace is how long in-flight requests get to finish after SIGINT/SIGTERM.
const shutdownGrace = 10 * time.Second

func runServe(ctx context.Context, args []string, _ io.Reader, _, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	path := fs.String("config", "myelin.yaml", "the configuration file; created with defaults if missing")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log := logrus.New()
	log.SetOutput(stderr)

	created, err := ensureConfig(*path)
	if err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	setupLogging(log, cfg.Log)
	entry := logrus.NewEntry(log)
	if created {
		entry.WithField("path", *path).Info("no configuration found: wrote a default one")
	}
	srv, err := openServer(ctx, cfg, entry)
	if err != nil {
		return err
	}
	return srv.run(ctx)
}

// ensureConfig writes the default configuration at path if nothing is there.
func ensureConfig(path string) (bool, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if _, err := f.Write(config.Generate(config.GenerateOptions{})); err != nil {
		f.Close()
		return false, err
	}
	return true, f.Close()
}

func setupLogging(log *logrus.Logger, c config.Log) {
	if c.Format == "json" {
		log.SetFormatter(&logrus.JSONFormatter{})
	} else {
		log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, DisableColors: true})
	}
	level, err := logrus.ParseLevel(c.Level)
	if err != nil {
		level = logrus.InfoLevel // Validate has already refused unknown levels
	}
	log.SetLevel(level)
}

// server is every component of one running homeserver, wired together.
type server struct {
	cfg        *config.Config
	log        *logrus.Entry
	db         *storage.DB
	sender     *federation.Sender
	notifs     *pusher.Worker
	client     *http.Server
	federation *http.Server
	tlsConfig  *tls.Config
}

func openServer(ctx context.Context, cfg *config.Config, log *logrus.Entry) (*server, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	key, err := loadOrCreateSigningKey(cfg.SigningKeyPath, log)
	if err != nil {
		return nil, err
	}
	oldKeys, err := retiredKeys(cfg.RetiredKeysPath(), key.ID)
	if err != nil {
		return nil, fmt.Errorf("loading retired signing keys: %w", err)
	}
	certPath, keyPath, generated := cfg.TLSPaths()
	if generated {
		made, err := federation.EnsureSelfSignedCert(certPath, keyPath, cfg.ServerName)
		if err != nil {
			return nil, fmt.Errorf("generating a self-signed federation certificate: %w", err)
		}
		if made {
			log.WithField("path", certPath).Warn("federation.tls_cert is not set: generated a self-signed certificate, which other servers will not trust")
		}
	}
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, fmt.Errorf("loading the federation certificate: %w", err)
	}

	db, err := storage.Open(ctx, storage.Config{
		URL:          cfg.Database.URL,
		SQLitePath:   cfg.SQLitePath(),
		Synchronous:  cfg.Database.Synchronous,
		MaxOpenConns: cfg.Database.MaxOpenConns,
	})
	if err != nil {
		return nil, fmt.Errorf("opening the database: %w", err)
	}

	fedClient, err := federation.NewClient(cfg.ServerName, key, cfg.Federation.TrustedCAFiles,
		federation.WithStaticHosts(cfg.Federation.StaticHosts),
		federation.WithPrivateAddresses(cfg.Federation.AllowPrivateAddresses))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("federation client: %w", err)
	}
	keyRing := federation.NewKeyRing(federation.KeyRingConfig{
		ServerName:    cfg.ServerName,
		SigningKey:    key,
		OldVerifyKeys: oldKeys,
		Notaries:      cfg.Federation.KeyNotaries,
	}, db, fedClient)
	// Outbound room federation: the handshakes the room server makes through other servers,
	// and the queues that carry this server's events to the servers of its rooms.
	outbound := federation.NewOutbound(fedClient, keyRing, log)
	sender := federation.NewSender(federation.SenderConfig{ServerName: cfg.ServerName, DB: db, Client: fedClient}, log)
	rooms := roomserver.New(db, cfg.ServerName, key, roomserver.Options{
		DefaultRoomVersion:  cfg.Rooms.DefaultVersion,
		EncryptPrivateRooms: cfg.Rooms.EncryptPrivateByDefault,
		Federation:          outbound,
	})
	rooms.Subscribe(sender.OnNewEvent)
	// One notifier for every stream /sync waits on: room events (subscribed by the client API),
	// and to-device messages and device list changes from the key store.
	notifier := clientapi.NewNotifier()
	// User-level federation: remote keys and profiles, and the EDUs of to-device messages,
	// device lists, typing and receipts, queued on the sender.
	userFed := federation.NewUserClient(fedClient, sender)
	keyStore := e2e.New(db, cfg.ServerName, e2e.Options{Notifier: notifier, Rooms: rooms, Federation: userFed, Log: log, ToDeviceTTL: cfg.E2EE.ToDeviceTTL})
	go keyStore.RunToDeviceExpiry(ctx, 0)
	// Users' push rules: the rule API changes them and the notifier evaluates them, through one
	// Store so that a change reaches the cache the notifier reads.
	pushRules := push.NewStore(db)
	// Notifications: the worker evaluates each new event against the push rules of the room's
	// local members, records unread counts and delivers to push gateways (push/pusher).
	notifications := pusher.New(pusher.Config{
		ServerName: cfg.ServerName, DB: db, Rules: pushRules, Waker: notifier,
		IncludeContent: cfg.Push.IncludeContent, AllowPrivateAddresses: cfg.Push.AllowPrivateAddresses,
		Retention: cfg.Push.NotificationRetention,
	}, log)
	rooms.Subscribe(notifications.OnNewEvent)
	ephemeral := clientapi.NewEphemeral(clientapi.EphemeralConfig{
		ServerName: cfg.ServerName, DB: db, Rooms: rooms, Notifier: notifier, EDUs: sender, Log: log,
		Presence: cfg.Presence.Enabled,
	})
	// Presence (off by default): local users' events count as activity, and its timeouts run.
	if cfg.Presence.Enabled {
		rooms.Subscribe(ephemeral.OnNewEvent)
		go ephemeral.RunPresence(ctx)
	}
	// The media repository has its own front door on both listeners (uploads exceed the JSON body
	// limit). It fetches remote media through a federation client of its own, whose private
	// address rule is media.allow_private_addresses.
	mediaRemote, err := federation.NewClient(cfg.ServerName, key, cfg.Federation.TrustedCAFiles,
		federation.WithStaticHosts(cfg.Federation.StaticHosts),
		federation.WithPrivateAddresses(cfg.Media.AllowPrivateAddresses))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("media federation client: %w", err)
	}
	thumbSizes := make([]media.ThumbnailSize, 0, len(cfg.Media.ThumbnailSizes))
	for _, t := range cfg.Media.ThumbnailSizes {
		thumbSizes = append(thumbSizes, media.ThumbnailSize{Width: t.Width, Height: t.Height, Method: t.Method})
	}
	mediaRepo, err := media.New(media.Config{
		ServerName: cfg.ServerName, Dir: filepath.Join(cfg.DataDir, "media"), DB: db,
		MaxUploadSize: cfg.Media.MaxUploadSize, UserQuota: cfg.Media.UserQuota,
		MaxPendingUploads: cfg.Media.MaxPendingUploads, RemoteCacheLifetime: cfg.Media.RemoteCacheLifetime,
		ThumbnailSizes: thumbSizes, MaxImagePixels: cfg.Media.MaxImagePixels,
		LegacyUnauthenticated: cfg.Media.LegacyUnauthenticated, URLPreviews: cfg.Media.URLPreview.Enabled,
		URLPreviewDeniedHosts: cfg.Media.URLPreview.DeniedHosts, URLPreviewCacheLifetime: cfg.Media.URLPreview.CacheLifetime,
		Remote: mediaRemote,
	}, log)
	if err != nil {
		db.Close()
		return nil, err
	}
	go mediaRepo.Run(ctx)
	go clientapi.RunReportRetention(ctx, db, cfg.Reports.Retention, log)
	go clientapi.RunTxnRetention(ctx, db, log) // transaction ids: 24 hours
	go rooms.RunSearchIndexer(ctx, log.WithField("component", "search-indexer"))
	// Message retention (retention, m.room.retention): old message bodies are purged.
	go rooms.RunRetention(ctx, roomserver.RetentionPolicy{
		DefaultMaxLifetime: cfg.Retention.DefaultMaxLifetime,
		MinLifetime:        cfg.Retention.MinLifetime, MaxLifetime: cfg.Retention.MaxLifetime,
	}, cfg.Retention.PurgeInterval, log)
	client := clientapi.New(clientapi.Config{
		ServerName:      cfg.ServerName,
		PublicBaseURL:   cfg.Client.PublicBaseURL,
		WellKnownServer: cfg.Federation.WellKnownServer,
		MaxBodyBytes:    cfg.Client.MaxBodyBytes,

		DB:                        db,
		RegistrationEnabled:       cfg.Registration.Enabled,
		RegistrationRequiresToken: cfg.Registration.RequireToken,
		ConsentPolicies:           consentPolicies(cfg.Consent),
		RateLimit: clientapi.RateLimitConfig{
			Enabled: cfg.RateLimit.Enabled, PerSecond: cfg.RateLimit.PerSecond, Burst: cfg.RateLimit.Burst,
		},
		DefaultRoomVersion:        cfg.Rooms.DefaultVersion,
		Rooms:                     rooms,
		E2E:                       keyStore,
		SyncNotifier:              notifier,
		Ephemeral:                 ephemeral,
		RemoteProfiles:            userFed,
		ProfileRequiresSharedRoom: cfg.Profile.RequireSharedRoom,
		PresenceEnabled:           cfg.Presence.Enabled,
		TURN:                      turnConfig(cfg.TURN),
		Support:                   supportInfo(cfg.Support),
		PushRules:                 pushRules,
		Notifications:             notifications,
		DirectoryRequiresAuth:     cfg.Directory.RequireAuth,
		RemoteDirectory:           outbound,
		Hooks: clientapi.Hooks{
			DevicesDeleted:     keyStore.DevicesDeleted,
			AccountDeactivated: accountDeactivated(db, rooms, keyStore, mediaRepo, pushRules, cfg.ServerName),
		},
	}, log)
	fed := federation.NewServer(federation.Config{
		ServerName:    cfg.ServerName,
		SigningKey:    key,
		OldVerifyKeys: oldKeys,
		MaxBodyBytes:  cfg.Client.MaxBodyBytes,
		KeyRing:       keyRing,
		Rooms:         rooms,
		DB:            db,
		Remote:        fedClient,
		Forwarder:     sender,
		Contacted:     sender.Wake,
		EDUHandlers:   userEDUHandlers(cfg, ephemeral, keyStore),
		UserKeys:      keyStore,
		Directory:     rooms,
		// The published rooms go to other servers only if the operator says so (directory.federate).
		FederateRoomDirectory: cfg.Directory.Federate,
		Queries: map[string]mxhttp.HandlerFunc{
			"profile":   federation.ProfileQuery(db, cfg.ServerName, cfg.Profile.RequireSharedRoom),
			"directory": directoryQuery(rooms),
		},
	}, log)

	clientHandler := media.Mount(client.Handler(), mediaRepo.ClientHandler(client.AuthenticateUser))
	fedHandler := media.Mount(fed.Handler(), mediaRepo.FederationHandler(fed.AuthenticateOrigin))

	return &server{
		cfg:    cfg,
		log:    log,
		db:     db,
		sender: sender,
		notifs: notifications,
		client: &http.Server{
			Handler:           clientHandler,
			ReadHeaderTimeout: 30 * time.Second,
			// No WriteTimeout: /sync long-polls; each handler bounds its own wait.
		},
		federation: &http.Server{
			Handler:           fedHandler,
			ReadHeaderTimeout: 30 * time.Second,
		},
		tlsConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
	}, nil
}

// userEDUHandlers are the handlers of the EDUs about users; m.presence has one only when
// presence is enabled, so that a server with presence off takes none.
func userEDUHandlers(cfg *config.Config, ephemeral *clientapi.Ephemeral, keyStore *e2e.Store) map[string]federation.EDUHandler {
	h := federation.UserEDUHandlers(ephemeral, keyStore)
	if cfg.Presence.Enabled {
		h["m.presence"] = federation.PresenceEDU(ephemeral)
	}
	return h
}

// directoryQuery answers GET /_matrix/federation/v1/query/directory: the room an alias of this
// server names, and the servers in it, for another server's user to join through.
func directoryQuery(rooms *roomserver.Server) mxhttp.HandlerFunc {
	return func(r *http.Request) (mxhttp.Response, error) {
		alias := r.URL.Query().Get("room_alias")
		if alias == "" {
			return mxhttp.Response{}, mxhttp.MissingParam("room_alias is required")
		}
		roomID, servers, err := rooms.ResolveLocalAlias(r.Context(), alias)
		switch {
		case errors.Is(err, roomserver.ErrNotFound), errors.Is(err, roomserver.ErrInvalid):
			return mxhttp.Response{}, mxhttp.NotFound("room alias not found").Because(err)
		case err != nil:
			return mxhttp.Response{}, mxhttp.Internal(err)
		}
		return mxhttp.OK(map[string]any{"room_id": roomID, "servers": servers}), nil
	}
}

// accountDeactivated is what other components do when an account is deactivated: the user
// leaves every room (invites and knocks included), their end-to-end encryption keys go, and on
// erasure what /sync kept for them (filters, account data, lazy-loading records) goes too.
// Leaving comes first and does not stop at a room that fails: the keys must go regardless.
// accountDeactivated is what deactivation does beyond the account itself: the user leaves every
// room and their keys go. With erase (the spec's "erase": true), everything else they left with
// the server goes too: profile, receipts, account data and sync records, push rules, and
// uploaded media.
func accountDeactivated(db *storage.DB, rooms *roomserver.Server, keyStore *e2e.Store, mediaRepo *media.Service, pushRules *push.Store, serverName string) func(ctx context.Context, userID string, erase bool) error {
	return func(ctx context.Context, userID string, erase bool) error {
		leaveErr := rooms.LeaveAllRooms(ctx, userID)
		localpart := strings.TrimSuffix(strings.TrimPrefix(userID, "@"), ":"+serverName)
		err := db.WithTx(ctx, func(tx *storage.Tx) error {
			if err := keyStore.DeleteUserKeys(ctx, tx, userID); err != nil {
				return err
			}
			if err := tx.DeleteUserOpenIDTokens(ctx, userID); err != nil {
				return err
			}
			// Nobody can read the account's notifications any more, nor should anything be pushed.
			if err := tx.DeleteUserPushActions(ctx, userID); err != nil {
				return err
			}
			if err := tx.DeleteUserPushers(ctx, userID); err != nil {
				return err
			}
			if !erase {
				return nil
			}
			if err := tx.DeleteUserSyncData(ctx, userID, localpart); err != nil {
				return err
			}
			if err := tx.DeleteProfile(ctx, localpart); err != nil {
				return err
			}
			if err := tx.DeleteUserPushRules(ctx, userID); err != nil {
				return err
			}
			// Their reports keep what they were about, not what they wrote (storage/reports.go).
			if _, err := tx.EraseReportsOf(ctx, userID); err != nil {
				return err
			}
			// What they consented to is evidence while the server holds what they gave it; with
			// erasure that goes, and so does the record of the person (storage/consent.go).
			if err := tx.DeleteUserConsent(ctx, localpart); err != nil {
				return err
			}
			return tx.DeleteUserReceipts(ctx, userID)
		})
		pushRules.Forget(userID)
		var mediaErr error
		if erase {
			_, mediaErr = mediaRepo.DeleteUserMedia(ctx, userID)
		}
		return errors.Join(leaveErr, err, mediaErr)
	}
}

// retiredKeys returns the keys retired by rotate-key, for our key document's old_verify_keys.
// The current key is left out: a rotation interrupted before its last step leaves it listed.
func retiredKeys(path, currentID string) (map[string]federation.OldVerifyKey, error) {
	retired, err := keys.LoadRetiredKeys(path)
	if err != nil {
		return nil, err
	}
	old := make(map[string]federation.OldVerifyKey, len(retired))
	for id, k := range retired {
		if id != currentID {
			old[id] = federation.OldVerifyKey{Key: k.Key, ExpiredTS: k.ExpiredTS}
		}
	}
	return old, nil
}

func loadOrCreateSigningKey(path string, log *logrus.Entry) (keys.SigningKey, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		k, err := keys.GenerateSigningKey()
		if err != nil {
			return keys.SigningKey{}, err
		}
		if err := keys.WriteSigningKey(path, k); err != nil {
			return keys.SigningKey{}, fmt.Errorf("writing the signing key: %w", err)
		}
		log.WithFields(logrus.Fields{"path": path, "key_id": k.ID}).Info("generated a new server signing key")
		return k, nil
	}
	k, err := keys.LoadSigningKey(path)
	if err != nil {
		return keys.SigningKey{}, fmt.Errorf("loading the signing key: %w", err)
	}
	return k, nil
}

// run serves until ctx is cancelled, then drains in-flight requests and closes the database.
func (s *server) run(ctx context.Context) error {
	clientLn, err := net.Listen("tcp", s.cfg.Client.Listen)
	if err != nil {
		s.db.Close()
		return fmt.Errorf("client listener: %w", err)
	}
	fedLn, err := net.Listen("tcp", s.cfg.Federation.Listen)
	if err != nil {
		clientLn.Close()
		s.db.Close()
		return fmt.Errorf("federation listener: %w", err)
	}
	s.log.WithFields(logrus.Fields{
		"server_name": s.cfg.ServerName,
		"client":      clientLn.Addr().String(),
		"federation":  fedLn.Addr().String(),
		"database":    s.db.Dialect().String(),
	}).Info("myelin is listening")

	if addr := s.cfg.Debug.PprofListen; addr != "" {
		go servePprof(addr, s.log)
	}
	errs := make(chan error, 2)
	go func() { errs <- s.client.Serve(clientLn) }()
	go func() { errs <- s.federation.Serve(tls.NewListener(fedLn, s.tlsConfig)) }()
	senderCtx, stopSender := context.WithCancel(context.WithoutCancel(ctx))
	senderDone := make(chan struct{})
	go func() {
		defer close(senderDone)
		if err := s.sender.Run(senderCtx); err != nil {
			s.log.WithError(err).Error("the federation sender stopped")
		}
	}()

	notifsDone := make(chan struct{})
	go func() {
		defer close(notifsDone)
		if err := s.notifs.Run(senderCtx); err != nil {
			s.log.WithError(err).Error("the notification worker stopped")
		}
	}()

	var serveErr error
	select {
	case <-ctx.Done():
		s.log.Info("shutting down")
	case serveErr = <-errs:
		s.log.WithError(serveErr).Error("a listener failed; shutting down")
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := s.client.Shutdown(shutdownCtx); err != nil {
		s.log.WithError(err).Warn("client listener did not drain in time")
	}
	if err := s.federation.Shutdown(shutdownCtx); err != nil {
		s.log.WithError(err).Warn("federation listener did not drain in time")
	}
	// The sender stops before the database closes; what it had not sent stays queued.
	stopSender()
	<-senderDone
	<-notifsDone
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("closing the database: %w", err)
	}
	s.log.Info("stopped")
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return nil
}

// servePprof serves Go's profiler for an operator on a loopback address (config validation
// refuses any other). It lives until the process exits.
func servePprof(addr string, log *logrus.Entry) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	log.WithField("address", addr).Warn("serving the Go profiler (debug.pprof_listen)")
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		log.WithError(err).Error("the profiler listener failed")
	}
}
