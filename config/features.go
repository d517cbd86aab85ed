package config

import (
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// TURN is the TURN server offered to clients for voice and video calls (GET /voip/turnServer).
// No uris: none is offered.
type TURN struct {
	URIs []string `yaml:"uris"`
	// SharedSecret is coturn's static-auth-secret: each user gets credentials valid for TTL
	// (the TURN REST API). Username and Password are the alternative: one fixed account
	// handed to every user.
	SharedSecret string        `yaml:"shared_secret"`
	Username     string        `yaml:"username"`
	Password     string        `yaml:"password"`
	TTL          time.Duration `yaml:"ttl"`
	// AllowGuests hands credentials to guest accounts too (this server has none yet).
	AllowGuests bool `yaml:"allow_guests"`
}

// Support is what /.well-known/matrix/support tells users about reaching the administrators.
// Neither contacts nor page: the endpoint answers 404, as the spec says.
type Support struct {
	Contacts []SupportContact `yaml:"contacts"`
	Page     string           `yaml:"page"`
}

// SupportContact is one way to reach the administrators; role is m.role.admin,
// m.role.security or a namespaced role of one's own.
type SupportContact struct {
	MatrixID     string `yaml:"matrix_id"`
	EmailAddress string `yaml:"email_address"`
	Role         string `yaml:"role"`
}

// Reports controls what happens to content reports users send to the administrators.
type Reports struct {
	// Retention: reports older than this are deleted. A report names the reporter and what they
	// reported; kept for ever it would be a record of who complained about whom.
	Retention time.Duration `yaml:"retention"`
}

// DefaultReportRetention is long enough for a volunteer team to get to every report.
const DefaultReportRetention = 90 * 24 * time.Hour

var (
	namespacedRole = regexp.MustCompile(`^[a-z][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)+$`)
	turnURI        = regexp.MustCompile(`^turns?:[^\s]+$`)
)

func (c *Config) validateFeatures() []string {
	var p []string
	t := c.TURN
	for i, u := range t.URIs {
		if !turnURI.MatchString(u) {
			p = append(p, c.at("turn.uris", "entry %d: %q is not a turn: or turns: URI", i+1, u))
		}
	}
	if len(t.URIs) > 0 {
		hasStatic := t.Username != "" || t.Password != ""
		switch {
		case t.SharedSecret == "" && !hasStatic:
			p = append(p, c.at("turn.uris", "set turn.shared_secret, or turn.username and turn.password"))
		case t.SharedSecret != "" && hasStatic:
			p = append(p, c.at("turn.shared_secret", "set either shared_secret or username and password, not both"))
		case hasStatic && (t.Username == "" || t.Password == ""):
			p = append(p, c.at("turn.username", "username and password must be set together"))
		}
	}
	if t.TTL < time.Minute || t.TTL > 7*24*time.Hour {
		p = append(p, c.at("turn.ttl", "must be between 1m and 168h"))
	}
	for i, ct := range c.Support.Contacts {
		if ct.MatrixID == "" && ct.EmailAddress == "" {
			p = append(p, c.at("support.contacts", "entry %d: needs a matrix_id or an email_address", i+1))
		}
		if ct.MatrixID != "" && (!strings.HasPrefix(ct.MatrixID, "@") || !strings.Contains(ct.MatrixID, ":")) {
			p = append(p, c.at("support.contacts", "entry %d: %q is not a Matrix user id", i+1, ct.MatrixID))
		}
		if ct.EmailAddress != "" {
			if a, err := mail.ParseAddress(ct.EmailAddress); err != nil || a.Address != ct.EmailAddress {
				p = append(p, c.at("support.contacts", "entry %d: %q is not an email address", i+1, ct.EmailAddress))
			}
		}
		if ct.Role != "m.role.admin" && ct.Role != "m.role.security" && !namespacedRole.MatchString(ct.Role) {
			p = append(p, c.at("support.contacts", "entry %d: role must be m.role.admin, m.role.security or a namespaced role such as org.example.moderator", i+1))
		}
	}
	if pg := c.Support.Page; pg != "" {
		if u, err := url.Parse(pg); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			p = append(p, c.at("support.page", "%q is not an http(s) URL", pg))
		}
	}
	if c.Reports.Retention < time.Hour {
		p = append(p, c.at("reports.retention", "must be at least 1h, e.g. 2160h"))
	}
	return p
}
