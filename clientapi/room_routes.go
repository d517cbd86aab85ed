package clientapi

import (
	"net/http"

	"github.com/gorilla/mux"

	"myelin/mxhttp"
)

// roomRoutes registers the endpoints of rooms and messages: creating rooms, membership,
// sending and reading events, aliases and upgrades.
func (a *API) roomRoutes(r *mux.Router) {
	if a.cfg.Rooms == nil {
		return
	}
	handle := func(path string, h authedFunc, methods ...string) {
		mxhttp.Route(r, "/_matrix/client/v3"+path).Handler(mxhttp.Handle(a.authed(h))).Methods(methods...)
	}
	open := func(path string, h authedFunc, methods ...string) {
		mxhttp.Route(r, "/_matrix/client/v3"+path).Handler(mxhttp.Handle(a.optionalAuth(h))).Methods(methods...)
	}
	const get, put, post, del = http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete

	handle("/createRoom", a.createRoom, post)
	handle("/joined_rooms", a.joinedRooms, get)
	handle("/join/{roomIdOrAlias}", a.joinRoomIDOrAlias, post)
	handle("/knock/{roomIdOrAlias}", a.knock, post)
	handle("/rooms/{roomId}/join", a.joinRoom, post)
	handle("/rooms/{roomId}/invite", a.invite, post)
	handle("/rooms/{roomId}/leave", a.leave, post)
	handle("/rooms/{roomId}/forget", a.forget, post)
	handle("/rooms/{roomId}/kick", a.kick, post)
	handle("/rooms/{roomId}/ban", a.ban, post)
	handle("/rooms/{roomId}/unban", a.unban, post)

	handle("/rooms/{roomId}/send/{eventType}/{txnId}", a.sendMessage, put)
	handle("/rooms/{roomId}/state/{eventType}/{stateKey}", a.putState, put)
	handle("/rooms/{roomId}/state/{eventType}/", a.putState, put)
	handle("/rooms/{roomId}/state/{eventType}", a.putState, put)
	handle("/rooms/{roomId}/redact/{eventId}/{txnId}", a.redact, put)

	handle("/rooms/{roomId}/state", a.getState, get)
	handle("/rooms/{roomId}/state/{eventType}/{stateKey}", a.getStateEvent, get)
	handle("/rooms/{roomId}/state/{eventType}/", a.getStateEvent, get)
	handle("/rooms/{roomId}/state/{eventType}", a.getStateEvent, get)
	handle("/rooms/{roomId}/event/{eventId}", a.getEvent, get)
	handle("/rooms/{roomId}/members", a.members, get)
	handle("/rooms/{roomId}/joined_members", a.joinedMembers, get)
	handle("/rooms/{roomId}/messages", a.messages, get)
	handle("/rooms/{roomId}/context/{eventId}", a.eventContext, get)
	mxhttp.Route(r, "/_matrix/client/v1/rooms/{roomId}/timestamp_to_event").Handler(
		mxhttp.Handle(a.authed(a.timestampToEvent))).Methods(get)

	handle("/directory/room/{roomAlias}", a.putAlias, put)
	open("/directory/room/{roomAlias}", a.getAlias, get)
	handle("/directory/room/{roomAlias}", a.deleteAlias, del)
	handle("/rooms/{roomId}/aliases", a.roomAliases, get)
	open("/directory/list/room/{roomId}", a.getRoomVisibility, get)
	handle("/directory/list/room/{roomId}", a.setRoomVisibility, put)
	handle("/rooms/{roomId}/upgrade", a.upgradeRoom, post)
	a.relationRoutes(r) // relations.go
	// The published room directory, room summaries and spaces (publicrooms.go, roomsummary.go,
	// hierarchy.go). Reading the directory or a summary needs a token unless
	// directory.require_auth is off; listing another server's directory always does.
	if _, ok := a.cfg.Rooms.(directoryRooms); ok {
		browse := open
		if a.cfg.DirectoryRequiresAuth {
			browse = handle
		}
		browse("/publicRooms", a.getPublicRooms, get)
		handle("/publicRooms", a.postPublicRooms, post)
		v1 := func(path string, h mxhttp.HandlerFunc) {
			mxhttp.Route(r, "/_matrix/client/v1"+path).Handler(mxhttp.Handle(h)).Methods(get)
		}
		if a.cfg.DirectoryRequiresAuth {
			v1("/room_summary/{roomIdOrAlias}", a.authed(a.roomSummary))
		} else {
			v1("/room_summary/{roomIdOrAlias}", a.optionalAuth(a.roomSummary))
		}
		v1("/rooms/{roomId}/hierarchy", a.authed(a.hierarchy))
	}
}
