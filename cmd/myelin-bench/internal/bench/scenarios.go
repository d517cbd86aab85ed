package bench

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// timelineFilter keeps /sync answers to what the scenarios look at, identically on every server.
const (
	timelineFilter = `{"room":{"timeline":{"limit":10}}}`
	lazyFilter     = `{"room":{"timeline":{"limit":10},"state":{"lazy_load_members":true}}}`
)

// register registers n users on env's first server, showing progress.
func (env *Env) register(ctx context.Context, n int) ([]*User, error) {
	env.Progress.Phase("registering users", n)
	return env.Reg.RegisterMany(ctx, n, env.Cfg.RegisterConcurrency, env.Progress.Step)
}

// joinAll makes every user join room, concurrently.
func (env *Env) joinAll(ctx context.Context, room string, users []*User, via ...string) error {
	env.Progress.Phase("joining members", len(users))
	return forEach(ctx, len(users), env.Cfg.Concurrency, func(ctx context.Context, _, i int) error {
		defer env.Progress.Step()
		return users[i].Join(ctx, room, via...)
	})
}

// runSend sends Messages messages into one room, first one at a time from one user, then from
// Concurrency users at once.
func runSend(ctx context.Context, env *Env) (Outcome, error) {
	cfg := env.Cfg
	users, err := env.register(ctx, 1+cfg.Concurrency)
	if err != nil {
		return Outcome{}, err
	}
	owner, senders := users[0], users[1:]
	room, err := owner.CreateRoom(ctx, "bench send")
	if err != nil {
		return Outcome{}, err
	}
	if err := env.joinAll(ctx, room, senders); err != nil {
		return Outcome{}, err
	}
	// One message first, so that neither mode pays for a cold connection or cache.
	if _, err := owner.SendText(ctx, room, "warm-up"); err != nil {
		return Outcome{}, err
	}

	env.measuring()
	var seq Samples
	env.Progress.Phase("send sequential", cfg.Messages)
	start := time.Now()
	for i := range cfg.Messages {
		if err := seq.Time(func() error {
			_, err := owner.SendText(ctx, room, fmt.Sprintf("sequential %d", i))
			return err
		}); err != nil {
			return Outcome{}, err
		}
		env.Progress.Step()
	}
	seqWall := time.Since(start)

	var conc Samples
	env.Progress.Phase(fmt.Sprintf("send %d concurrent", cfg.Concurrency), cfg.Messages)
	start = time.Now()
	err = forEach(ctx, cfg.Messages, cfg.Concurrency, func(ctx context.Context, w, i int) error {
		defer env.Progress.Step()
		return conc.Time(func() error {
			_, err := senders[w].SendText(ctx, room, fmt.Sprintf("concurrent %d", i))
			return err
		})
	})
	concWall := time.Since(start)
	if err != nil {
		return Outcome{}, err
	}
	return Outcome{Metrics: []Metric{
		seq.Summarise("send/sequential", seqWall),
		conc.Summarise(fmt.Sprintf("send/concurrent-%d", cfg.Concurrency), concWall),
	}}, nil
}

// arrival is what a long-poll saw: the first m.room.message of a room, and when its answer came.
type arrival struct {
	at      time.Time
	eventID string
	next    string
	err     error
}

// pollForMessage long-polls /sync as u from since until the timeline of room holds an
// m.room.message, and reports the moment that answer arrived.
func pollForMessage(ctx context.Context, u *User, since, room string, timeout time.Duration) arrival {
	for {
		resp, err := u.Sync(ctx, since, timelineFilter, timeout)
		at := time.Now()
		if err != nil {
			return arrival{err: err}
		}
		for _, ev := range resp.Rooms.Join[room].Timeline.Events {
			if ev.Type == "m.room.message" {
				return arrival{at: at, eventID: ev.EventID, next: resp.NextBatch}
			}
		}
		since = resp.NextBatch
	}
}

// catchUp does an initial and then an incremental /sync as u, so that the returned token to
// long-poll from lies after the set-up's joins and messages.
func catchUp(ctx context.Context, u *User) (string, error) {
	resp, err := u.Sync(ctx, "", timelineFilter, 0)
	if err != nil {
		return "", err
	}
	resp2, err := u.Sync(ctx, resp.NextBatch, timelineFilter, 0)
	if err != nil {
		return "", err
	}
	return resp2.NextBatch, nil
}

// wakeRounds measures, Rounds times, the time from the start of a send by sender to the moment a
// long-poll by poller (parked Settle before the send) returns with that message.
func wakeRounds(ctx context.Context, env *Env, sender, poller *User, room string, label string) (wake, send *Samples, err error) {
	since, err := catchUp(ctx, poller)
	if err != nil {
		return nil, nil, err
	}
	wake, send = &Samples{}, &Samples{}
	env.Progress.Phase(label, env.Cfg.Rounds)
	for i := range env.Cfg.Rounds {
		rctx, cancel := context.WithCancel(ctx)
		ch := make(chan arrival, 1)
		go func() { ch <- pollForMessage(rctx, poller, since, room, env.Cfg.LongPoll) }()
		select {
		case <-time.After(env.Cfg.Settle):
		case <-ctx.Done():
			cancel()
			return nil, nil, ctx.Err()
		}
		start := time.Now()
		eventID, err := sender.SendText(ctx, room, fmt.Sprintf("wake %d", i))
		if err != nil {
			cancel()
			return nil, nil, err
		}
		send.Add(time.Since(start))
		var a arrival
		select {
		case a = <-ch:
		case <-ctx.Done():
			cancel()
			return nil, nil, ctx.Err()
		}
		cancel()
		if a.err != nil {
			return nil, nil, fmt.Errorf("long-poll: %w", a.err)
		}
		if a.eventID != eventID {
			return nil, nil, fmt.Errorf("long-poll returned %s, not the message just sent (%s)", a.eventID, eventID)
		}
		wake.Add(a.at.Sub(start))
		since = a.next
		env.Progress.Step()
	}
	return wake, send, nil
}

// runSyncWake: one user long-polls /sync, the other sends.
func runSyncWake(ctx context.Context, env *Env) (Outcome, error) {
	users, err := env.register(ctx, 2)
	if err != nil {
		return Outcome{}, err
	}
	sender, poller := users[0], users[1]
	room, err := sender.CreateRoom(ctx, "bench sync-wake")
	if err != nil {
		return Outcome{}, err
	}
	if err := poller.Join(ctx, room); err != nil {
		return Outcome{}, err
	}
	env.measuring()
	wake, send, err := wakeRounds(ctx, env, sender, poller, room, "sync-wake rounds")
	if err != nil {
		return Outcome{}, err
	}
	return Outcome{
		Metrics: []Metric{wake.Summarise("sync-wake/send-to-wake", 0), send.Summarise("sync-wake/send", 0)},
		Notes:   []string{fmt.Sprintf("long-poll parked %s before each send", env.Cfg.Settle)},
	}, nil
}

// buildRooms has creator create n rooms that every member joins, with a few messages each.
func (env *Env) buildRooms(ctx context.Context, creator *User, n int, members []*User, via ...string) ([]string, error) {
	rooms := make([]string, n)
	for r := range n {
		room, err := creator.CreateRoom(ctx, fmt.Sprintf("bench room %d", r))
		if err != nil {
			return nil, err
		}
		if err := env.joinAll(ctx, room, members, via...); err != nil {
			return nil, err
		}
		for i := range 3 {
			if _, err := creator.SendText(ctx, room, fmt.Sprintf("filler %d", i)); err != nil {
				return nil, err
			}
		}
		rooms[r] = room
	}
	return rooms, nil
}

// runInitialSync: a user in Rooms rooms of Members members each syncs from scratch, with the full
// member state and with lazy-loaded members (alternating, so both see the same load).
func runInitialSync(ctx context.Context, env *Env) (Outcome, error) {
	cfg := env.Cfg
	users, err := env.register(ctx, max(cfg.Members, 1))
	if err != nil {
		return Outcome{}, err
	}
	u := users[0]
	if _, err := env.buildRooms(ctx, u, cfg.Rooms, users[1:]); err != nil {
		return Outcome{}, err
	}
	var full, lazy Samples
	var fullBytes, lazyBytes int
	env.measuring()
	env.Progress.Phase("initial syncs", 2*cfg.Rounds)
	for range cfg.Rounds {
		for _, mode := range []struct {
			filter string
			s      *Samples
			bytes  *int
		}{{timelineFilter, &full, &fullBytes}, {lazyFilter, &lazy, &lazyBytes}} {
			start := time.Now()
			resp, err := u.Sync(ctx, "", mode.filter, 0)
			if err != nil {
				return Outcome{}, err
			}
			mode.s.Add(time.Since(start))
			if got := len(resp.Rooms.Join); got < cfg.Rooms {
				return Outcome{}, fmt.Errorf("initial sync shows %d joined rooms, want %d", got, cfg.Rooms)
			}
			*mode.bytes += resp.Size
			env.Progress.Step()
		}
	}
	fm, lm := full.Summarise("initial-sync/full-state", 0), lazy.Summarise("initial-sync/lazy-members", 0)
	if cfg.Rounds > 0 {
		fm.Bytes, lm.Bytes = fullBytes/cfg.Rounds, lazyBytes/cfg.Rounds
	}
	return Outcome{
		Metrics: []Metric{fm, lm},
		Notes:   []string{fmt.Sprintf("%d rooms of %d members, timeline limit 10", cfg.Rooms, cfg.Members)},
	}, nil
}

// runIncrementalSync: a user in Rooms rooms; each round one room gets a message, and the user's
// incremental /sync from just before it is timed (once the server has the message, so that the
// time is the server assembling the answer, not waiting), as is one with nothing new.
func runIncrementalSync(ctx context.Context, env *Env) (Outcome, error) {
	cfg := env.Cfg
	users, err := env.register(ctx, 2)
	if err != nil {
		return Outcome{}, err
	}
	sender, u := users[0], users[1]
	rooms, err := env.buildRooms(ctx, sender, cfg.Rooms, []*User{u})
	if err != nil {
		return Outcome{}, err
	}
	since, err := catchUp(ctx, u)
	if err != nil {
		return Outcome{}, err
	}
	var changed, idle Samples
	env.measuring()
	env.Progress.Phase("incremental syncs", cfg.Rounds)
	for i := range cfg.Rounds {
		room := rooms[i%len(rooms)]
		eventID, err := sender.SendText(ctx, room, fmt.Sprintf("change %d", i))
		if err != nil {
			return Outcome{}, err
		}
		// Wait until the sync stream has the message (some servers publish it asynchronously).
		a := pollForMessage(ctx, u, since, room, cfg.LongPoll)
		if a.err != nil {
			return Outcome{}, a.err
		}
		start := time.Now()
		resp, err := u.Sync(ctx, since, timelineFilter, 0)
		if err != nil {
			return Outcome{}, err
		}
		changed.Add(time.Since(start))
		if !resp.HasEvent(room, eventID) {
			return Outcome{}, fmt.Errorf("incremental sync lacks %s", eventID)
		}
		since = resp.NextBatch
		if err := idle.Time(func() error { _, err := u.Sync(ctx, since, timelineFilter, 0); return err }); err != nil {
			return Outcome{}, err
		}
		env.Progress.Step()
	}
	return Outcome{
		Metrics: []Metric{changed.Summarise("incremental-sync/one-changed", 0), idle.Summarise("incremental-sync/none-changed", 0)},
		Notes:   []string{fmt.Sprintf("user in %d rooms", cfg.Rooms)},
	}, nil
}

// runJoin: Rounds fresh users join, one after another, a room that starts with Members members.
func runJoin(ctx context.Context, env *Env) (Outcome, error) {
	cfg := env.Cfg
	users, err := env.register(ctx, max(cfg.Members, 1)+cfg.Rounds)
	if err != nil {
		return Outcome{}, err
	}
	owner := users[0]
	members, joiners := users[1:max(cfg.Members, 1)], users[max(cfg.Members, 1):]
	room, err := owner.CreateRoom(ctx, "bench join")
	if err != nil {
		return Outcome{}, err
	}
	if err := env.joinAll(ctx, room, members); err != nil {
		return Outcome{}, err
	}
	var joins Samples
	env.measuring()
	env.Progress.Phase("joins", len(joiners))
	for _, j := range joiners {
		if err := joins.Time(func() error { return j.Join(ctx, room) }); err != nil {
			return Outcome{}, err
		}
		env.Progress.Step()
	}
	return Outcome{
		Metrics: []Metric{joins.Summarise("join/local", 0)},
		Notes:   []string{fmt.Sprintf("room grows from %d to %d members", cfg.Members, cfg.Members+cfg.Rounds)},
	}, nil
}

// errNoSecondServer marks the federation scenario as skipped.
var errNoSecondServer = errors.New("no --hs2 given")

// runFederation: rooms of Members members on the first server; a fresh user of the second joins
// each (the second server's first join into that room), then messages sent on the first are
// timed until a long-poll on the second returns them.
func runFederation(ctx context.Context, env *Env) (Outcome, error) {
	if env.HS2 == nil {
		return Outcome{Skipped: true, Notes: []string{errNoSecondServer.Error()}}, nil
	}
	cfg := env.Cfg
	users, err := env.register(ctx, max(cfg.Members, 1))
	if err != nil {
		return Outcome{}, err
	}
	creator := users[0]
	rooms, err := env.buildRooms(ctx, creator, max(cfg.Rooms, 1), users[1:])
	if err != nil {
		return Outcome{}, err
	}
	env.Progress.Phase("registering users on hs2", len(rooms))
	remote, err := env.Reg2.RegisterMany(ctx, len(rooms), env.Cfg.RegisterConcurrency, env.Progress.Step)
	if err != nil {
		return Outcome{}, err
	}
	var joins Samples
	env.measuring()
	env.Progress.Phase("remote joins", len(rooms))
	for i, room := range rooms {
		if err := joins.Time(func() error { return remote[i].Join(ctx, room, creator.ServerName()) }); err != nil {
			return Outcome{}, fmt.Errorf("remote join: %w", err)
		}
		env.Progress.Step()
	}
	wake, _, err := wakeRounds(ctx, env, creator, remote[0], rooms[0], "federated send-to-sync rounds")
	if err != nil {
		return Outcome{}, err
	}
	return Outcome{
		Metrics: []Metric{joins.Summarise("federation/join", 0), wake.Summarise("federation/send-to-remote-sync", 0)},
		Notes:   []string{fmt.Sprintf("each join is the second server's first into a room of %d members", cfg.Members)},
	}, nil
}
