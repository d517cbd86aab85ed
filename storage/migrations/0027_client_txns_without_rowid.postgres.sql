-- Nothing to do on PostgreSQL: 0027 rebuilds client_txns without a rowid on SQLite, where a
-- table keyed by anything but an integer keeps its rows apart from its primary key. A
-- PostgreSQL table always keeps its rows in a heap of its own.
SELECT 1;
