-- 0002: blobs — the bytes of files attached to cases (issue 20), one row per blob.
--
-- A blob is named by the SHA-256 of its bytes (64 lowercase hex digits) and never changes.
-- It is written in its own transaction before the case document that names it is committed,
-- so a crash between the two leaves a row nobody names (reused by the next upload of the same
-- bytes), never a case naming a missing blob. Every process using the database reads it here.

CREATE TABLE blobs (
    sha256 text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size bigint NOT NULL,
    data bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
