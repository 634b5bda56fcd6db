-- 0002: several serve replicas on one database (issue 22; docs/architecture.md, "Replicas").
-- Additive only: a replica one version behind keeps serving.
--
-- A queued request is claimed in the database before its work: by which replica, until when
-- (a lease, timed by the database's clock). A claim past its lease is taken over.
ALTER TABLE inbox ADD COLUMN claimed_by text, ADD COLUMN claimed_until timestamptz;

-- The change log: every write transaction appends the rows it wrote (store table, key) and
-- who wrote them, then notifies `billing_bot_changes`; the other replicas re-read those rows
-- into memory. Old entries are dropped by every replica's housekeeping.
CREATE TABLE store_changes (
    seq bigserial PRIMARY KEY,
    tbl text NOT NULL,
    key text NOT NULL,
    origin text NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX store_changes_by_time ON store_changes (at);
