package main

import (
	"myelin/clientapi"
	"myelin/config"
)

// turnConfig is the client API's view of the turn section.
func turnConfig(c config.TURN) clientapi.TURNConfig {
	return clientapi.TURNConfig{
		URIs: c.URIs, SharedSecret: c.SharedSecret, Username: c.Username, Password: c.Password,
		TTL: c.TTL, AllowGuests: c.AllowGuests,
	}
}

// supportInfo is the client API's view of the support section.
func supportInfo(c config.Support) clientapi.SupportInfo {
	s := clientapi.SupportInfo{Page: c.Page}
	for _, ct := range c.Contacts {
		s.Contacts = append(s.Contacts, clientapi.SupportContact{MatrixID: ct.MatrixID, EmailAddress: ct.EmailAddress, Role: ct.Role})
	}
	return s
}
