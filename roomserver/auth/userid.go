package auth

import (
	"strings"

	"myelin/roomserver/event"
)

// validUserID is the user id check of the auth rules (power levels "users" keys, v12
// additional_creators): the validation applied to sender, which accepts historical localparts.
func validUserID(id string) bool {
	_, err := event.ParseUserID(id)
	return err == nil
}

// domain returns the server name of a user, room or (v1, v2) event id: everything after the
// first ":". Localparts cannot contain ":", so the first one is the separator.
func domain(id string) string {
	_, d, _ := strings.Cut(id, ":")
	return d
}
