-- Version 1: managed jobs and their checkpoints.
--
-- Times are RFC 3339 UTC text with a fixed nine-digit fraction, so that text
-- order is time order. JSON documents (jobs.details, checkpoints.metadata)
-- are stored as TEXT so that the sqlite3 shell and its JSON functions can
-- read them.

CREATE TABLE jobs (
    jid        TEXT    NOT NULL PRIMARY KEY,
    type       TEXT    NOT NULL,
    pid        INTEGER NOT NULL DEFAULT 0,
    status     TEXT    NOT NULL,
    exit_code  INTEGER,                     -- NULL when unknown
    log        TEXT    NOT NULL DEFAULT '',
    details    TEXT,                        -- JSON, NULL when none
    start_time INTEGER NOT NULL DEFAULT 0,  -- /proc/<pid>/stat field 22
    created_at TEXT    NOT NULL,
    updated_at TEXT    NOT NULL
) STRICT;

CREATE INDEX jobs_created_at ON jobs (created_at);

CREATE TABLE checkpoints (
    id         TEXT    NOT NULL PRIMARY KEY,
    jid        TEXT    REFERENCES jobs (jid) ON DELETE CASCADE, -- NULL for a bare PID
    path       TEXT    NOT NULL,
    type       TEXT    NOT NULL,
    size       INTEGER NOT NULL DEFAULT 0,
    created_at TEXT    NOT NULL,
    metadata   TEXT                         -- checkpoint.json, NULL when none
) STRICT;

CREATE INDEX checkpoints_jid_created_at ON checkpoints (jid, created_at);
CREATE INDEX checkpoints_created_at ON checkpoints (created_at);
