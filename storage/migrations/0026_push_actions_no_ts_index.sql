-- event_push_actions without its index on ts (performance, issue 9): every recorded action paid
-- for a fourth B-tree, used only by the hourly pruning. ts is when the notification worker
-- evaluated the action, which it does in stream order, so pruning finds its cut by a binary
-- search over stream positions on event_push_actions_pos (storage.PrunePushActions).
DROP INDEX IF EXISTS event_push_actions_ts;
