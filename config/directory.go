package config

// Directory decides who may read the published room directory and room summaries.
type Directory struct {
	// RequireAuth asks for an access token on GET /publicRooms and GET /room_summary, which the
	// spec lets a server answer anonymously. On by default: the list of rooms, their names and
	// topics and who is in them is this server's users' business, not any passer-by's.
	RequireAuth bool `yaml:"require_auth"`
	// Federate lets other servers list the published rooms over federation (GET/POST
	// /_matrix/federation/v1/publicRooms), which is how their users find them. Off by default,
	// as in Synapse: a crawler can otherwise collect every room of every server in one sweep.
	// The space hierarchy is served either way, only for rooms the asking server could join.
	Federate bool `yaml:"federate"`
}
