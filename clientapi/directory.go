package clientapi

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"myelin/mxhttp"
	"myelin/roomserver/auth"
	"myelin/roomserver/event"
	"myelin/storage"
)

// Room aliases of this server's namespace, and the room directory's publication flag.

// parseAlias checks "#localpart:server" and reports whether the alias is in this server's
// namespace.
func (a *API) parseAlias(alias string) (local bool, err error) {
	rest, ok := strings.CutPrefix(alias, "#")
	if !ok || len(alias) > event.MaxIDBytes {
		return false, mxhttp.InvalidParam("%q is not a room alias", alias)
	}
	lp, server, ok := strings.Cut(rest, ":")
	if !ok || lp == "" || strings.ContainsAny(lp, "# \t\n\x00") {
		return false, mxhttp.InvalidParam("%q is not a room alias", alias)
	}
	if _, err := event.ParseServerName(server); err != nil {
		return false, mxhttp.InvalidParam("%q is not a room alias", alias)
	}
	return server == a.cfg.ServerName, nil
}

func pathAlias(r *http.Request) (string, error) { return roomPathVar(r, "roomAlias") }

// reserveAlias claims an alias for a room about to be created: M_ROOM_IN_USE if it is taken.
func (a *API) reserveAlias(ctx context.Context, alias, creator string) error {
	err := a.db.WithTx(ctx, func(tx *storage.Tx) error {
		return tx.InsertRoomAlias(ctx, storage.RoomAlias{Alias: alias, Creator: creator, CreatedTS: a.now().UnixMilli()})
	})
	if errors.Is(err, storage.ErrConflict) {
		return &mxhttp.Error{Status: http.StatusBadRequest, Code: "M_ROOM_IN_USE", Message: "room alias " + alias + " is taken"}
	}
	if err != nil {
		return mxhttp.Internal(err)
	}
	return nil
}

// releaseAlias drops a reservation whose room was not created.
func (a *API) releaseAlias(ctx context.Context, alias string) {
	err := a.db.WithTx(ctx, func(tx *storage.Tx) error { return tx.DeleteRoomAlias(ctx, alias) })
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		mxhttp.Logger(ctx).WithError(err).Error("could not release a room alias reservation")
	}
}

// resolveAlias returns the room an alias of this server points to.
func (a *API) resolveAlias(ctx context.Context, alias string) (string, error) {
	local, err := a.parseAlias(alias)
	if err != nil {
		return "", err
	}
	if !local {
		return "", mxhttp.NotFound("room alias %s is on another server, and resolving those over federation is not supported yet", alias)
	}
	al, err := storage.GetRoomAlias(ctx, a.db, alias)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && al.RoomID == "") {
		return "", mxhttp.NotFound("room alias %s not found", alias)
	}
	if err != nil {
		return "", mxhttp.Internal(err)
	}
	return al.RoomID, nil
}

func (a *API) putAlias(r *http.Request, who Requester) (mxhttp.Response, error) {
	alias, err := pathAlias(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	local, err := a.parseAlias(alias)
	if err != nil {
		return mxhttp.Response{}, err
	}
	if !local {
		return mxhttp.Response{}, mxhttp.InvalidParam("room alias %s is not in this server's namespace", alias)
	}
	var req struct {
		RoomID string `json:"room_id"`
	}
	if err := mxhttp.ReadJSON(r, &req); err != nil {
		return mxhttp.Response{}, err
	}
	if req.RoomID == "" {
		return mxhttp.Response{}, mxhttp.MissingParam("room_id is required")
	}
	if _, err := event.ParseRoomID(req.RoomID); err != nil {
		return mxhttp.Response{}, mxhttp.InvalidParam("%q is not a room id", req.RoomID)
	}
	ctx := r.Context()
	m, err := a.cfg.Rooms.Membership(ctx, req.RoomID, who.UserID)
	if err != nil {
		return mxhttp.Response{}, roomError(err)
	}
	if m != "join" {
		return mxhttp.Response{}, mxhttp.Forbidden("only members of a room can give it an alias")
	}
	err = a.db.WithTx(ctx, func(tx *storage.Tx) error {
		return tx.InsertRoomAlias(ctx, storage.RoomAlias{Alias: alias, RoomID: req.RoomID, Creator: who.UserID, CreatedTS: a.now().UnixMilli()})
	})
	if errors.Is(err, storage.ErrConflict) {
		return mxhttp.Response{}, &mxhttp.Error{Status: http.StatusConflict, Code: "M_UNKNOWN", Message: "room alias " + alias + " already exists"}
	}
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	return mxhttp.Empty(), nil
}

func (a *API) getAlias(r *http.Request, _ Requester) (mxhttp.Response, error) {
	alias, err := pathAlias(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	local, err := a.parseAlias(alias)
	if err != nil {
		return mxhttp.Response{}, err
	}
	if !local {
		// Another server's alias is that server's to answer (GET /query/directory).
		remote, ok := a.cfg.Rooms.(remoteRooms)
		if !ok {
			return mxhttp.Response{}, mxhttp.NotFound("room alias %s is on another server", alias)
		}
		roomID, servers, err := remote.ResolveRemoteAlias(r.Context(), alias)
		if err != nil {
			return mxhttp.Response{}, aliasError(alias, err)
		}
		if servers == nil {
			servers = []string{}
		}
		return mxhttp.OK(map[string]any{"room_id": roomID, "servers": servers}), nil
	}
	roomID, err := a.resolveAlias(r.Context(), alias)
	if err != nil {
		return mxhttp.Response{}, err
	}
	return mxhttp.OK(map[string]any{"room_id": roomID, "servers": []string{a.cfg.ServerName}}), nil
}

// deleteAlias lets the alias's creator, or anyone who may change the room's canonical alias,
// remove it.
func (a *API) deleteAlias(r *http.Request, who Requester) (mxhttp.Response, error) {
	alias, err := pathAlias(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	if _, err := a.parseAlias(alias); err != nil {
		return mxhttp.Response{}, err
	}
	ctx := r.Context()
	al, err := storage.GetRoomAlias(ctx, a.db, alias)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && al.RoomID == "") {
		return mxhttp.Response{}, mxhttp.NotFound("room alias %s not found", alias)
	}
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	if al.Creator != who.UserID {
		ok, err := a.mayChangeState(ctx, al.RoomID, who.UserID, "m.room.canonical_alias")
		if err != nil {
			return mxhttp.Response{}, err
		}
		if !ok {
			return mxhttp.Response{}, mxhttp.Forbidden("you may not remove this alias")
		}
	}
	err = a.db.WithTx(ctx, func(tx *storage.Tx) error { return tx.DeleteRoomAlias(ctx, alias) })
	if errors.Is(err, storage.ErrNotFound) {
		return mxhttp.Response{}, mxhttp.NotFound("room alias %s not found", alias)
	}
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	return mxhttp.Empty(), nil
}

// mayChangeState reports whether a joined user's power level allows a state event of typ.
func (a *API) mayChangeState(ctx context.Context, roomID, userID, typ string) (bool, error) {
	m, err := a.cfg.Rooms.Membership(ctx, roomID, userID)
	if err != nil {
		return false, roomError(err)
	}
	if m != "join" {
		return false, nil
	}
	state, err := a.cfg.Rooms.CurrentState(ctx, roomID, auth.TypeCreate, auth.TypePowerLevels)
	if err != nil {
		return false, roomError(err)
	}
	var create, pl *event.Event
	for _, ev := range state {
		switch ev.Type() {
		case auth.TypeCreate:
			create = ev
		case auth.TypePowerLevels:
			pl = ev
		}
	}
	levels, err := auth.NewPowerLevels(pl, create)
	if err != nil {
		return false, mxhttp.Internal(err)
	}
	return levels.UserLevel(userID) >= levels.EventLevel(typ, true), nil
}

func (a *API) roomAliases(r *http.Request, who Requester) (mxhttp.Response, error) {
	roomID, err := pathRoomID(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	ctx := r.Context()
	m, err := a.cfg.Rooms.Membership(ctx, roomID, who.UserID)
	if err != nil {
		return mxhttp.Response{}, roomError(err)
	}
	if m != "join" && !worldReadable(ctx, a.cfg.Rooms, roomID) {
		return mxhttp.Response{}, mxhttp.Forbidden("you are not a member of this room")
	}
	aliases, err := storage.AliasesOfRoom(ctx, a.db, roomID)
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	if aliases == nil {
		aliases = []string{}
	}
	return mxhttp.OK(map[string]any{"aliases": aliases}), nil
}

func (a *API) getRoomVisibility(r *http.Request, _ Requester) (mxhttp.Response, error) {
	roomID, err := pathRoomID(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	ctx := r.Context()
	if _, err := a.cfg.Rooms.RoomVersion(ctx, roomID); err != nil {
		return mxhttp.Response{}, roomError(err)
	}
	published, err := storage.RoomPublished(ctx, a.db, roomID)
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	vis := "private"
	if published {
		vis = "public"
	}
	return mxhttp.OK(map[string]string{"visibility": vis}), nil
}

// setRoomVisibility publishes or withdraws a room. It takes the power to change the room's
// canonical alias (as Synapse asks: those who name the room decide where it is advertised), or
// a server admin, who may withdraw a room from this server's directory without being in it.
// An absent visibility is "public", the spec's default.
func (a *API) setRoomVisibility(r *http.Request, who Requester) (mxhttp.Response, error) {
	roomID, err := pathRoomID(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	var req struct {
		Visibility *string `json:"visibility"`
	}
	if err := mxhttp.ReadJSON(r, &req); err != nil {
		return mxhttp.Response{}, err
	}
	vis := "public"
	if req.Visibility != nil {
		vis = *req.Visibility
	}
	if vis != "public" && vis != "private" {
		return mxhttp.Response{}, mxhttp.InvalidParam("visibility must be public or private")
	}
	ctx := r.Context()
	if _, err := a.cfg.Rooms.RoomVersion(ctx, roomID); err != nil {
		return mxhttp.Response{}, roomError(err)
	}
	ok, err := a.mayChangeState(ctx, roomID, who.UserID, "m.room.canonical_alias")
	if err != nil {
		return mxhttp.Response{}, err
	}
	if !ok {
		acc, err := storage.GetAccount(ctx, a.db, who.Localpart)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return mxhttp.Response{}, mxhttp.Internal(err)
		}
		ok = err == nil && acc.IsAdmin
	}
	if !ok {
		return mxhttp.Response{}, mxhttp.Forbidden("you may not change the room's publication")
	}
	err = a.db.WithTx(ctx, func(tx *storage.Tx) error {
		return tx.SetRoomPublished(ctx, roomID, vis == "public", a.now().UnixMilli())
	})
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	return mxhttp.Empty(), nil
}
