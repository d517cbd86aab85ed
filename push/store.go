package push

import (
	"context"

	"myelin/storage"
)

// Store holds users' push rules: the spec's defaults merged with what each user changed
// through the push rule API. The evaluator files of this package do no I/O; this one does.
type Store struct {
	db *storage.DB
}

// NewStore returns the push rule store over db.
func NewStore(db *storage.DB) *Store { return &Store{db: db} }

// Rules returns the user's effective rule set: the defaults with the user's own rules and
// changes to default rules applied. Callers must not modify it.
func (s *Store) Rules(ctx context.Context, userID string) (*Ruleset, error) {
	panic("push.Store.Rules: not implemented yet")
}
