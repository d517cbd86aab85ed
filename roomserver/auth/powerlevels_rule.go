package auth

// powerLevels is the m.room.power_levels rule (10 in v1–v5 and v12, 9 in v6–v11). The sender's
// level and the "current" values come from the room's power levels, the "new" ones from e.
func (c *checker) powerLevels() error {
	next, err := parsePowerLevels(c.e.Content(), c.v)
	if err != nil {
		return rejectf(RulePowerLevelsContent, "%v", err)
	}
	if c.v.PrivilegedCreators {
		for _, creator := range c.create.creators {
			if _, ok := next.users[creator]; ok {
				return rejectf(RulePowerLevelsCreators, "%s", creator)
			}
		}
	}
	if !c.pl.hasEvent {
		return nil
	}
	cur := c.pl.c
	sender := c.e.Sender()
	level := c.pl.UserLevel(sender)

	for i, name := range plFieldNames {
		o, n := cur.top[i], next.top[i]
		if o == n {
			continue
		}
		if o.ok && o.v > level {
			return rejectf(RulePowerLevelsChange, "%s: current %d above sender's %d", name, o.v, level)
		}
		if n.ok && n.v > level {
			return rejectf(RulePowerLevelsChange, "%s: new %d above sender's %d", name, n.v, level)
		}
	}
	maps := []struct {
		name      string
		cur, next map[string]int64
	}{{"events", cur.events, next.events}}
	if c.v.NotificationsPowerLevels {
		maps = append(maps, struct {
			name      string
			cur, next map[string]int64
		}{"notifications", cur.notifications, next.notifications})
	}
	for _, m := range maps {
		for k, o := range m.cur {
			if n, ok := m.next[k]; (!ok || n != o) && o > level {
				return rejectf(RulePowerLevelsChange, "%s %q: current %d above sender's %d", m.name, k, o, level)
			}
		}
		for k, n := range m.next {
			if o, ok := m.cur[k]; (!ok || n != o) && n > level {
				return rejectf(RulePowerLevelsChange, "%s %q: new %d above sender's %d", m.name, k, n, level)
			}
		}
	}
	for u, o := range cur.users {
		if u == sender {
			continue
		}
		if n, ok := next.users[u]; (!ok || n != o) && o >= level {
			return rejectf(RulePowerLevelsChange, "users %s: current %d not below sender's %d", u, o, level)
		}
	}
	for u, n := range next.users {
		if o, ok := cur.users[u]; (!ok || n != o) && n > level {
			return rejectf(RulePowerLevelsChange, "users %s: new %d above sender's %d", u, n, level)
		}
	}
	return nil
}
