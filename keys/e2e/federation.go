package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"myelin/keys"
	"myelin/storage"
)

// Keys across servers (server-server API "Device Management", "End-to-End Encryption",
// "Send-to-device messaging").
//
// Remote users' keys are asked of their server (/user/keys/query, /user/keys/claim). The
// device list of a remote user who shares a room with a local user is cached, and kept
// current by the m.device_list_update and m.signing_key_update EDUs their server sends; an
// update whose prev_id does not follow the cached stream_id makes the server fetch the list
// again through /user/devices. A cached list is also refetched after remoteCacheLifetime, since
// a server that left all rooms with the user no longer hears of changes.
//
// Local users' changes are announced to the servers that share a room with them: the store
// keeps what it announced last (e2e_device_list_outbound) and sends the difference, one
// m.device_list_update per changed or deleted device, chained by stream_id and prev_id, and an
// m.signing_key_update when the master or self-signing key changed.
//
// Choices the spec leaves open:
//   - devices' display names are never shared with other servers (as Synapse's default);
//   - the user-signing key, and signatures on a master key by anyone but its owner, are never
//     given to another server;
//   - a remote server that does not answer within remoteQueryTimeout is reported in failures.

const (
	remoteCacheLifetime = time.Hour
	remoteQueryTimeout  = 10 * time.Second
)

// UserDevices is the answer to GET /user/devices/{userId}.
type UserDevices struct {
	UserID         string          `json:"user_id"`
	StreamID       int64           `json:"stream_id"`
	Devices        []UserDevice    `json:"devices"`
	MasterKey      json.RawMessage `json:"master_key,omitempty"`
	SelfSigningKey json.RawMessage `json:"self_signing_key,omitempty"`
}

// UserDevice is one device of UserDevices.
type UserDevice struct {
	DeviceID    string          `json:"device_id"`
	Keys        json.RawMessage `json:"keys"`
	DisplayName string          `json:"device_display_name,omitempty"`
}

// DeviceListUpdate is the content of an m.device_list_update EDU.
type DeviceListUpdate struct {
	UserID      string          `json:"user_id"`
	DeviceID    string          `json:"device_id"`
	DisplayName string          `json:"device_display_name,omitempty"`
	StreamID    int64           `json:"stream_id"`
	PrevID      []int64         `json:"prev_id,omitempty"`
	Deleted     bool            `json:"deleted,omitempty"`
	Keys        json.RawMessage `json:"keys,omitempty"`
}

// SigningKeyUpdate is the content of an m.signing_key_update EDU.
type SigningKeyUpdate struct {
	UserID         string          `json:"user_id"`
	MasterKey      json.RawMessage `json:"master_key,omitempty"`
	SelfSigningKey json.RawMessage `json:"self_signing_key,omitempty"`
}

// remoteFailure is what failures says of a server that could not be asked.
func remoteFailure(err error) map[string]any {
	return map[string]any{"status": 503, "message": "the server could not be reached"}
}

// queryRemote fills res with the keys of remote users: from the cache when it is fresh, else
// from their servers, asked in parallel.
func (s *Store) queryRemote(ctx context.Context, want map[string][]string, res *QueryResult) {
	byServer := map[string]map[string][]string{}
	for userID, devices := range want {
		server, ok := serverOf(userID)
		if !ok || server == s.serverName {
			continue
		}
		if byServer[server] == nil {
			byServer[server] = map[string][]string{}
		}
		byServer[server][userID] = devices
	}
	if len(byServer) == 0 {
		return
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for server, users := range byServer {
		wg.Add(1)
		go func() {
			defer wg.Done()
			part := s.queryServer(ctx, server, users)
			mu.Lock()
			defer mu.Unlock()
			if part.failure != nil {
				res.Failures[server] = part.failure
			}
			for u, d := range part.DeviceKeys {
				res.DeviceKeys[u] = d
			}
			for u, k := range part.MasterKeys {
				res.MasterKeys[u] = k
			}
			for u, k := range part.SelfSigningKeys {
				res.SelfSigningKeys[u] = k
			}
		}()
	}
	wg.Wait()
}

type serverKeys struct {
	QueryResult
	failure map[string]any
}

func (s *Store) queryServer(ctx context.Context, server string, users map[string][]string) serverKeys {
	out := serverKeys{QueryResult: QueryResult{
		DeviceKeys: map[string]map[string]json.RawMessage{}, MasterKeys: map[string]json.RawMessage{},
		SelfSigningKeys: map[string]json.RawMessage{},
	}}
	log := s.opts.Log.WithField("destination", server)
	ask := map[string][]string{}
	now := s.now()
	for userID, devices := range users {
		l, err := storage.GetRemoteDeviceList(ctx, s.db, userID)
		if err == nil && now.Sub(time.UnixMilli(l.FetchedTS)) < remoteCacheLifetime {
			out.fromCache(l, devices)
			continue
		}
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			log.WithError(err).Warn("reading a cached device list")
		}
		ask[userID] = devices
	}
	if len(ask) == 0 {
		return out
	}
	if s.opts.Federation == nil {
		out.failure = remoteFailure(nil)
		return out
	}
	qctx, cancel := context.WithTimeout(ctx, remoteQueryTimeout)
	defer cancel()
	got, err := s.opts.Federation.QueryKeys(qctx, server, ask)
	if err != nil {
		log.WithError(err).Debug("querying remote keys failed")
		out.failure = remoteFailure(err)
		return out
	}
	for userID, devices := range ask {
		l := storage.RemoteDeviceList{UserID: userID, StreamID: -1, FetchedTS: now.UnixMilli(), Devices: map[string][]byte{}}
		shown := map[string]json.RawMessage{}
		for deviceID, raw := range got.DeviceKeys[userID] {
			obj, err := ValidateDeviceKeys(raw, userID, deviceID)
			if err != nil {
				log.WithField("user_id", userID).Debug("dropping remote device keys that fail their checks")
				continue
			}
			l.Devices[deviceID] = obj.JSON()
			shown[deviceID] = obj.JSON()
		}
		out.DeviceKeys[userID] = shown
		if k, ok := crossSigningOf(got.MasterKeys[userID], userID, KeyMaster); ok {
			out.MasterKeys[userID], l.MasterKey = k, k
		}
		if k, ok := crossSigningOf(got.SelfSigningKeys[userID], userID, KeySelfSigning); ok {
			out.SelfSigningKeys[userID], l.SelfSigningKey = k, k
		}
		// Only a whole list of someone who shares a room with us stays current through EDUs.
		if len(devices) == 0 && s.sharesRoomLocally(ctx, userID) {
			if err := s.db.WithTx(ctx, func(tx *storage.Tx) error { return tx.PutRemoteDeviceList(ctx, l) }); err != nil {
				log.WithError(err).Warn("caching a remote device list")
			}
		}
	}
	return out
}

// fromCache adds the devices of a cached list (those of deviceIDs, or all).
func (out *serverKeys) fromCache(l storage.RemoteDeviceList, deviceIDs []string) {
	shown := map[string]json.RawMessage{}
	for id, raw := range l.Devices {
		if len(deviceIDs) == 0 || slices.Contains(deviceIDs, id) {
			shown[id] = raw
		}
	}
	out.DeviceKeys[l.UserID] = shown
	if l.MasterKey != nil {
		out.MasterKeys[l.UserID] = l.MasterKey
	}
	if l.SelfSigningKey != nil {
		out.SelfSigningKeys[l.UserID] = l.SelfSigningKey
	}
}

// crossSigningOf checks that a remote cross-signing key belongs to userID and has the usage.
func crossSigningOf(raw json.RawMessage, userID, usage string) (json.RawMessage, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, false
	}
	var k struct {
		UserID string   `json:"user_id"`
		Usage  []string `json:"usage"`
	}
	if json.Unmarshal(raw, &k) != nil || k.UserID != userID || !slices.Contains(k.Usage, usage) {
		return nil, false
	}
	obj, err := keys.ParseObject(raw)
	if err != nil {
		return nil, false
	}
	return obj.JSON(), true
}

// sharesRoomLocally reports whether a remote user shares a room with a user of this server.
func (s *Store) sharesRoomLocally(ctx context.Context, userID string) bool {
	if s.opts.Rooms == nil {
		return false
	}
	users, err := s.opts.Rooms.SharedRoomUsers(ctx, userID)
	if err != nil {
		return false
	}
	for _, u := range users {
		if _, ok := s.localpart(u); ok {
			return true
		}
	}
	return false
}

// claimRemote claims one-time keys of remote users from their servers, in parallel.
func (s *Store) claimRemote(ctx context.Context, want map[string]map[string]string, res *ClaimResult) {
	byServer := map[string]map[string]map[string]string{}
	for userID, devices := range want {
		server, ok := serverOf(userID)
		if !ok || server == s.serverName {
			continue
		}
		if byServer[server] == nil {
			byServer[server] = map[string]map[string]string{}
		}
		byServer[server][userID] = devices
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for server, users := range byServer {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s.opts.Federation == nil {
				mu.Lock()
				res.Failures[server] = remoteFailure(nil)
				mu.Unlock()
				return
			}
			qctx, cancel := context.WithTimeout(ctx, remoteQueryTimeout)
			defer cancel()
			got, err := s.opts.Federation.ClaimKeys(qctx, server, users)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				s.opts.Log.WithError(err).WithField("destination", server).Debug("claiming remote keys failed")
				res.Failures[server] = remoteFailure(err)
				return
			}
			for userID := range users {
				if keys, ok := got.OneTimeKeys[userID]; ok {
					res.OneTimeKeys[userID] = keys
				}
			}
		}()
	}
	wg.Wait()
}

// QueryLocal answers another server's /user/keys/query: the keys of this server's users only,
// as any other server may see them.
func (s *Store) QueryLocal(ctx context.Context, want map[string][]string) (QueryResult, error) {
	local := map[string][]string{}
	for u, d := range want {
		if _, ok := s.localpart(u); ok {
			local[u] = d
		}
	}
	res, err := s.Query(ctx, "", local)
	if err != nil {
		return res, err
	}
	for _, devices := range res.DeviceKeys {
		for id, raw := range devices {
			devices[id] = withoutDisplayName(raw)
		}
	}
	res.UserSigningKeys = nil
	return res, nil
}

// withoutDisplayName drops a device's display name, which stays on this server.
func withoutDisplayName(raw json.RawMessage) json.RawMessage {
	obj, err := keys.ParseObject(raw)
	if err != nil {
		return raw
	}
	return obj.With("unsigned", []byte("{}")).JSON()
}

// ClaimLocal answers another server's /user/keys/claim: keys of this server's users only.
func (s *Store) ClaimLocal(ctx context.Context, want map[string]map[string]string) (ClaimResult, error) {
	local := map[string]map[string]string{}
	for u, d := range want {
		if _, ok := s.localpart(u); ok {
			local[u] = d
		}
	}
	return s.Claim(ctx, local)
}

// LocalUserDevices answers another server's /user/devices/{userId}; ErrNotFound for a user of
// another server.
func (s *Store) LocalUserDevices(ctx context.Context, userID string) (UserDevices, error) {
	if _, ok := s.localpart(userID); !ok {
		return UserDevices{}, fail(ErrNotFound, "not a user of this server")
	}
	res, err := s.QueryLocal(ctx, map[string][]string{userID: {}})
	if err != nil {
		return UserDevices{}, err
	}
	ann, err := storage.AnnouncedDevices(ctx, s.db, userID)
	if err != nil {
		return UserDevices{}, err
	}
	out := UserDevices{UserID: userID, StreamID: ann[""].StreamID, Devices: []UserDevice{},
		MasterKey: res.MasterKeys[userID], SelfSigningKey: res.SelfSigningKeys[userID]}
	for id, raw := range res.DeviceKeys[userID] {
		out.Devices = append(out.Devices, UserDevice{DeviceID: id, Keys: withoutUnsigned(raw)})
	}
	sort.Slice(out.Devices, func(i, j int) bool { return out.Devices[i].DeviceID < out.Devices[j].DeviceID })
	return out, nil
}

func withoutUnsigned(raw json.RawMessage) json.RawMessage {
	obj, err := keys.ParseObject(raw)
	if err != nil {
		return raw
	}
	return obj.Without("unsigned").JSON()
}

// ReceiveDeviceListUpdate applies an m.device_list_update EDU from the user's own server
// (origin checked by the caller) to the cached list, or refetches the list when the update
// does not follow it, and tells local users the list changed.
func (s *Store) ReceiveDeviceListUpdate(ctx context.Context, u DeviceListUpdate) error {
	server, ok := serverOf(u.UserID)
	if !ok || server == s.serverName {
		return fail(ErrInvalidParam, "not a remote user")
	}
	cached, err := storage.GetRemoteDeviceList(ctx, s.db, u.UserID)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		// Nothing cached: the next query asks the user's server.
	case err != nil:
		return err
	case u.StreamID <= cached.StreamID:
		return nil // seen already
	case cached.StreamID >= 0 && slices.Contains(u.PrevID, cached.StreamID):
		if err := s.applyDeviceUpdate(ctx, u); err != nil {
			return err
		}
	default:
		s.resyncDeviceList(ctx, server, u.UserID)
	}
	return s.remoteChanged(ctx, u.UserID)
}

func (s *Store) applyDeviceUpdate(ctx context.Context, u DeviceListUpdate) error {
	return s.db.WithTx(ctx, func(tx *storage.Tx) error {
		switch {
		case u.Deleted:
			if err := tx.DeleteRemoteDevice(ctx, u.UserID, u.DeviceID); err != nil {
				return err
			}
		case len(u.Keys) > 0 && string(u.Keys) != "null":
			obj, err := ValidateDeviceKeys(u.Keys, u.UserID, u.DeviceID)
			if err != nil {
				return err
			}
			if err := tx.PutRemoteDevice(ctx, u.UserID, u.DeviceID, obj.JSON()); err != nil {
				return err
			}
		}
		return tx.SetRemoteDeviceListStream(ctx, u.UserID, u.StreamID)
	})
}

// resyncDeviceList replaces a cached list with the one /user/devices returns, or drops it when
// the server cannot be asked, so that the next query asks again.
func (s *Store) resyncDeviceList(ctx context.Context, server, userID string) {
	log := s.opts.Log.WithFields(logrus.Fields{"destination": server})
	var (
		devs UserDevices
		err  error
	)
	if s.opts.Federation == nil {
		err = errors.New("federation is not wired")
	} else {
		qctx, cancel := context.WithTimeout(ctx, remoteQueryTimeout)
		devs, err = s.opts.Federation.UserDevices(qctx, server, userID)
		cancel()
	}
	err = s.db.WithTx(ctx, func(tx *storage.Tx) error {
		if err != nil || devs.UserID != userID {
			return tx.DeleteRemoteDeviceList(ctx, userID)
		}
		l := storage.RemoteDeviceList{UserID: userID, StreamID: devs.StreamID, FetchedTS: s.now().UnixMilli(), Devices: map[string][]byte{}}
		for _, d := range devs.Devices {
			if obj, err := ValidateDeviceKeys(d.Keys, userID, d.DeviceID); err == nil {
				l.Devices[d.DeviceID] = obj.JSON()
			}
		}
		if k, ok := crossSigningOf(devs.MasterKey, userID, KeyMaster); ok {
			l.MasterKey = k
		}
		if k, ok := crossSigningOf(devs.SelfSigningKey, userID, KeySelfSigning); ok {
			l.SelfSigningKey = k
		}
		return tx.PutRemoteDeviceList(ctx, l)
	})
	if err != nil {
		log.WithError(err).Warn("could not resynchronise a remote device list")
	}
}

// ReceiveSigningKeyUpdate applies an m.signing_key_update EDU from the user's own server.
func (s *Store) ReceiveSigningKeyUpdate(ctx context.Context, u SigningKeyUpdate) error {
	server, ok := serverOf(u.UserID)
	if !ok || server == s.serverName {
		return fail(ErrInvalidParam, "not a remote user")
	}
	master, _ := crossSigningOf(u.MasterKey, u.UserID, KeyMaster)
	self, _ := crossSigningOf(u.SelfSigningKey, u.UserID, KeySelfSigning)
	err := s.db.WithTx(ctx, func(tx *storage.Tx) error {
		return tx.SetRemoteCrossSigningKeys(ctx, u.UserID, master, self)
	})
	if err != nil {
		return err
	}
	return s.remoteChanged(ctx, u.UserID)
}

// remoteChanged puts a remote user's device list change on the device_lists stream, so that
// local users who share a room with them query their keys again.
func (s *Store) remoteChanged(ctx context.Context, userID string) error {
	var notify func()
	err := s.db.WithTx(ctx, func(tx *storage.Tx) error {
		var err error
		notify, err = s.markChanged(ctx, tx, userID)
		return err
	})
	if err == nil {
		notify()
	}
	return err
}

// announceDeviceChanges sends the servers that share a room with local users what changed in
// their devices and cross-signing keys since the last announcement. It runs after the change
// was made, and again a moment later: some changes are reported from inside the transaction
// that makes them, which may not have committed at the first pass.
func (s *Store) announceDeviceChanges(ctx context.Context, userIDs []string) {
	var local []string
	for _, u := range userIDs {
		if _, ok := s.localpart(u); ok {
			local = append(local, u)
		}
	}
	if len(local) == 0 || s.opts.Federation == nil {
		return
	}
	go func() {
		for _, wait := range []time.Duration{0, time.Second} {
			time.Sleep(wait)
			for _, u := range local {
				if err := s.announceUser(ctx, u); err != nil {
					s.opts.Log.WithError(err).Warn("could not announce a device list change to other servers")
				}
			}
		}
	}()
}

func digest(parts ...[]byte) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// announceUser diffs one user's devices against what was announced, records the new state
// and queues the EDUs.
func (s *Store) announceUser(ctx context.Context, userID string) error {
	s.announceMu.Lock()
	defer s.announceMu.Unlock()
	res, err := s.QueryLocal(ctx, map[string][]string{userID: {}})
	if err != nil {
		return err
	}
	type edu struct {
		typ     string
		content any
	}
	var edus []edu
	err = s.db.WithTx(ctx, func(tx *storage.Tx) error {
		edus = nil
		ann, err := storage.AnnouncedDevices(ctx, tx, userID)
		if err != nil {
			return err
		}
		head := ann[""]
		next := head.StreamID
		emit := func(u DeviceListUpdate) error {
			next++
			u.UserID, u.StreamID = userID, next
			if next > 1 {
				u.PrevID = []int64{next - 1}
			}
			edus = append(edus, edu{"m.device_list_update", u})
			return nil
		}
		devices := res.DeviceKeys[userID]
		ids := make([]string, 0, len(devices))
		for id := range devices {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			keys := withoutUnsigned(devices[id])
			d := digest(keys)
			if a, ok := ann[id]; ok && a.Digest == d {
				continue
			}
			if err := emit(DeviceListUpdate{DeviceID: id, Keys: keys}); err != nil {
				return err
			}
			if err := tx.SetAnnouncedDevice(ctx, userID, storage.AnnouncedDevice{DeviceID: id, Digest: d, StreamID: next}); err != nil {
				return err
			}
		}
		for id := range ann {
			if _, ok := devices[id]; ok || id == "" {
				continue
			}
			if err := emit(DeviceListUpdate{DeviceID: id, Deleted: true}); err != nil {
				return err
			}
			if err := tx.DeleteAnnouncedDevice(ctx, userID, id); err != nil {
				return err
			}
		}
		master, self := res.MasterKeys[userID], res.SelfSigningKeys[userID]
		csDigest := digest(master, self)
		if master == nil && self == nil {
			csDigest = ""
		}
		if csDigest != head.Digest {
			edus = append(edus, edu{"m.signing_key_update", SigningKeyUpdate{UserID: userID, MasterKey: master, SelfSigningKey: self}})
		}
		if next == head.StreamID && csDigest == head.Digest {
			return nil
		}
		return tx.SetAnnouncedDevice(ctx, userID, storage.AnnouncedDevice{DeviceID: "", Digest: csDigest, StreamID: next})
	})
	if err != nil || len(edus) == 0 {
		return err
	}
	dests := s.serversSharingRoom(ctx, userID)
	if len(dests) == 0 {
		return nil
	}
	for _, e := range edus {
		if err := s.opts.Federation.SendEDU(ctx, dests, e.typ, e.content); err != nil {
			return err
		}
	}
	return nil
}

// serversSharingRoom are the other servers with a user joined to a room userID is joined to.
func (s *Store) serversSharingRoom(ctx context.Context, userID string) []string {
	if s.opts.Rooms == nil {
		return nil
	}
	users, err := s.opts.Rooms.SharedRoomUsers(ctx, userID)
	if err != nil {
		s.opts.Log.WithError(err).Warn("could not find who shares a room with a user")
		return nil
	}
	var out []string
	for _, u := range users {
		if server, ok := serverOf(u); ok && server != s.serverName && !slices.Contains(out, server) {
			out = append(out, server)
		}
	}
	sort.Strings(out)
	return out
}
