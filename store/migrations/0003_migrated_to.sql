-- Version 3: a job moved to another daemon (`cedana migrate job`) has status 'migrated' and the
-- destination's address in migrated_to.
ALTER TABLE jobs ADD COLUMN migrated_to TEXT NOT NULL DEFAULT '';
