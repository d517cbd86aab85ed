package config

import "time"

// Push controls notifications to push gateways (the apps' servers that wake phones through
// Apple's and Google's push services) and how long notifications are kept.
type Push struct {
	// IncludeContent sends the message content, the sender, the sender's display name and the
	// room's name and alias to push gateways. Off by default: a push gateway passes what it
	// gets to the phone vendor's push service, so only event and room ids, the event type and
	// the unread count leave the server, and the app fetches the rest itself. A pusher with
	// format "event_id_only" never gets more, whatever this says.
	IncludeContent bool `yaml:"include_content"`
	// AllowPrivateAddresses lets notifications go to push gateways on loopback, private and
	// link-local addresses. Off by default: any user can set a pusher URL, and without this
	// rule could make the server probe the operator's network. Tests and private deployments
	// turn it on.
	AllowPrivateAddresses bool `yaml:"allow_private_addresses"`
	// NotificationRetention: recorded notifications (GET /notifications, unread counts) older
	// than this are deleted.
	NotificationRetention time.Duration `yaml:"notification_retention"`
}

func defaultPush() Push { return Push{NotificationRetention: 30 * 24 * time.Hour} }

func (c *Config) validatePush() []string {
	var p []string
	if c.Push.NotificationRetention < time.Hour {
		p = append(p, c.at("push.notification_retention", "must be at least 1h, e.g. 720h"))
	}
	return p
}
