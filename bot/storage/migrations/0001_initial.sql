-- 0001: the store's tables (bot/storage/pg_schema.py maps documents to these rows).
--
-- Every table: its key, typed columns for the fields queries use, `doc` (JSONB: the rest of
-- the document, nulls included), `doc_text` (the rest as JSON text when JSONB cannot hold it
-- exactly), `version` (the optimistic-concurrency guard, NULL for a document without one) and
-- `change_seq` (from store_change_seq on every write: the seam for replicas, issue 22).
-- Money is numeric beside its ISO 4217 code; times are timestamptz; due dates are date.

CREATE SEQUENCE store_change_seq;

CREATE TABLE meta (
    key text PRIMARY KEY,
    version bigint,
    doc jsonb, doc_text text,
    change_seq bigint NOT NULL DEFAULT nextval('store_change_seq')
);

CREATE TABLE counters (
    key text PRIMARY KEY,
    value bigint,
    version bigint,
    doc jsonb, doc_text text,
    change_seq bigint NOT NULL DEFAULT nextval('store_change_seq')
);

CREATE TABLE cases (
    key text PRIMARY KEY,
    number bigint,
    kind text,
    customer_id text,
    category text,
    description text,
    created_at timestamptz,
    created_by text,
    state text,
    owner text,
    subscription_id text,
    invoice text,
    dispute_invoice text,
    dispute_amount numeric,
    dispute_currency text,
    dispute_reason text,
    dispute_outcome text,
    credited_amount numeric,
    credited_currency text,
    resolution text,
    cancel_reason text,
    informed_via text,
    sr_id text,
    sr_mode text,
    sr_status text,
    sr_filed_at timestamptz,
    sr_title text,
    updated_at timestamptz,
    first_response_at timestamptz,
    resolved_at timestamptz,
    informed_at timestamptz,
    version bigint,
    doc jsonb, doc_text text,
    change_seq bigint NOT NULL DEFAULT nextval('store_change_seq'),
    CONSTRAINT cases_money CHECK (dispute_amount IS NULL OR dispute_currency IS NOT NULL),
    CONSTRAINT cases_credit CHECK (credited_amount IS NULL OR credited_currency IS NOT NULL)
);
CREATE INDEX cases_by_number ON cases (number);
CREATE INDEX cases_by_owner_state ON cases (owner, state);
CREATE INDEX cases_by_customer ON cases (customer_id);
CREATE INDEX cases_by_state_activity ON cases (state, updated_at);

-- A case's notes and its audit trail: one row per entry, in order (pos from 0).
CREATE TABLE case_notes (
    case_key text NOT NULL REFERENCES cases (key) ON DELETE CASCADE,
    pos integer NOT NULL,
    at timestamptz,
    author text,
    text text,
    to_microsoft boolean,
    doc jsonb, doc_text text,
    PRIMARY KEY (case_key, pos)
);

CREATE TABLE case_audit (
    case_key text NOT NULL REFERENCES cases (key) ON DELETE CASCADE,
    pos integer NOT NULL,
    at timestamptz,
    actor text,
    channel text,
    action text,
    details jsonb,
    doc jsonb, doc_text text,
    PRIMARY KEY (case_key, pos)
);
CREATE INDEX case_audit_by_actor_time ON case_audit (actor, at);

CREATE TABLE customers (
    key text PRIMARY KEY,
    id text,
    name text,
    tenant_id text,
    owner text,
    created_at timestamptz,
    version bigint,
    doc jsonb, doc_text text,
    change_seq bigint NOT NULL DEFAULT nextval('store_change_seq')
);
CREATE INDEX customers_by_tenant ON customers (tenant_id);

CREATE TABLE users (
    key text PRIMARY KEY,
    id text,
    display_name text,
    role text,
    time_zone text,
    locale text,
    tenant_id text,
    locale_explicit boolean,
    version bigint,
    doc jsonb, doc_text text,
    change_seq bigint NOT NULL DEFAULT nextval('store_change_seq')
);

CREATE TABLE identities (
    key text PRIMARY KEY,
    user_id text,
    version bigint,
    doc jsonb, doc_text text,
    change_seq bigint NOT NULL DEFAULT nextval('store_change_seq')
);
CREATE INDEX identities_by_user ON identities (user_id);

-- Open shapes: a conversation's form state, a channel's conversation reference.
CREATE TABLE conversations (
    key text PRIMARY KEY,
    version bigint,
    doc jsonb, doc_text text,
    change_seq bigint NOT NULL DEFAULT nextval('store_change_seq')
);

CREATE TABLE channel_references (
    key text PRIMARY KEY,
    version bigint,
    doc jsonb, doc_text text,
    change_seq bigint NOT NULL DEFAULT nextval('store_change_seq')
);

CREATE TABLE jobs (
    key text PRIMARY KEY,
    type text,
    due timestamptz,
    version bigint,
    doc jsonb, doc_text text,
    change_seq bigint NOT NULL DEFAULT nextval('store_change_seq')
);
CREATE INDEX jobs_by_due ON jobs (due);

CREATE TABLE events (
    key text PRIMARY KEY,
    expires timestamptz,
    version bigint,
    doc jsonb, doc_text text,
    change_seq bigint NOT NULL DEFAULT nextval('store_change_seq')
);
CREATE INDEX events_by_expiry ON events (expires);

-- The request queue: a request's payload is the channel's own shape.
CREATE TABLE inbox (
    key text PRIMARY KEY,
    channel text,
    version bigint,
    doc jsonb, doc_text text,
    change_seq bigint NOT NULL DEFAULT nextval('store_change_seq')
);

-- The collections flow's tables.
CREATE TABLE receivables (
    key text PRIMARY KEY,
    invoice text,
    customer_id text,
    customer_name text,
    tenant_id text,
    amount numeric,
    currency text,
    due_date date,
    paid_date date,
    amount_paid numeric,
    fingerprint text,
    version bigint,
    doc jsonb, doc_text text,
    change_seq bigint NOT NULL DEFAULT nextval('store_change_seq'),
    CONSTRAINT receivables_money CHECK (amount IS NULL OR currency IS NOT NULL)
);
CREATE INDEX receivables_by_customer_due ON receivables (customer_id, due_date);

CREATE TABLE collections_audit (
    key text PRIMARY KEY,
    at timestamptz,
    actor text,
    channel text,
    action text,
    subject text,
    details jsonb,
    version bigint,
    doc jsonb, doc_text text,
    change_seq bigint NOT NULL DEFAULT nextval('store_change_seq')
);
CREATE INDEX collections_audit_by_subject_time ON collections_audit (subject, at);

-- The collections flow's state (stages fired per customer, suspend/reactivate operations) and
-- every table a flow declares without a typed table of its own: genuinely open shapes.
CREATE TABLE flow_docs (
    tbl text NOT NULL,
    key text NOT NULL,
    version bigint,
    doc jsonb, doc_text text,
    change_seq bigint NOT NULL DEFAULT nextval('store_change_seq'),
    PRIMARY KEY (tbl, key)
);

-- Who owns the store now (pid, the serve's URL for `billing-bot chat`): one row. The owner also
-- holds a session advisory lock, so a second serve is refused (until replicas, issue 22).
CREATE TABLE store_owner (
    id integer PRIMARY KEY CHECK (id = 1),
    info jsonb NOT NULL,
    since timestamptz NOT NULL DEFAULT now()
);
