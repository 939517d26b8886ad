-- Version 2: the dump journal. A row exists while a dump is under way: the daemon records it
-- before CRIU starts, marks it dumped in CRIU's post-dump notification (the images are complete
-- and the workload still frozen), and deletes it when the checkpoint enters the catalog (in the
-- same transaction) or the dump fails. A daemon that finds rows when it starts was killed during
-- those dumps and settles them: a dump that was not marked dumped is rolled back (CRIU resumes
-- the workload when its post-dump notification goes unanswered), one that was becomes a complete
-- checkpoint in the catalog.

CREATE TABLE pending_dumps (
    id         TEXT    NOT NULL PRIMARY KEY,          -- the ID the checkpoint gets in the catalog
    jid        TEXT    REFERENCES jobs (jid) ON DELETE CASCADE, -- NULL for a bare PID
    state      TEXT    NOT NULL,                      -- 'dumping' or 'dumped'
    work_dir   TEXT    NOT NULL,                      -- where CRIU writes the images
    path       TEXT    NOT NULL,                      -- the checkpoint's final path or s3:// URL
    pid        INTEGER NOT NULL DEFAULT 0,            -- root of the dumped tree, 0 until CRIU starts
    pid_start  INTEGER NOT NULL DEFAULT 0,            -- its /proc/<pid>/stat start time
    criu_pid   INTEGER NOT NULL DEFAULT 0,            -- the criu process, 0 until it starts
    criu_start INTEGER NOT NULL DEFAULT 0,            -- its start time
    metadata   TEXT,                                  -- checkpoint.json as known before the dump
    created_at TEXT    NOT NULL,
    updated_at TEXT    NOT NULL
) STRICT;
