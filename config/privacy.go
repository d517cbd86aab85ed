package config

// Profile holds the switches that decide who sees a user's profile.
type Profile struct {
	// RequireSharedRoom shows a user's display name and avatar only to the user, to users who
	// share a room with them, and to servers with such a user. Off, anyone may look up any
	// profile.
	RequireSharedRoom bool `yaml:"require_shared_room"`
}

// Presence controls online/offline status. Off by default: whether someone is online, and
// since when, is a trace of their day.
type Presence struct {
	Enabled bool `yaml:"enabled"`
}
