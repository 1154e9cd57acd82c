-- Verified sign-up, e-mail domain admission and the e-mail outbox (issue 7).
--
-- * With SIGNUP_MODE=verified a sign-up is only a pending request until the
--   link mailed to the address is followed: the account (and its new
--   workspace, or its membership by invite or by e-mail domain) is created
--   then. The answer to a sign-up is the same whether or not the address
--   already has an account, so sign-up does not reveal which e-mails exist.
-- * The token is stored hashed (like invites and refresh tokens); so is the
--   invite token a pending sign-up will redeem.
-- * A workspace owner lists e-mail domains whose verified addresses may
--   join without an invite.
-- * Mail goes through an outbox in the same transaction as the state it
--   announces; the worker delivers it and clears the body once sent.

CREATE TABLE signup_requests (
    id                BIGSERIAL PRIMARY KEY,
    token_hash        BYTEA NOT NULL UNIQUE,
    email             TEXT NOT NULL,
    fullname          TEXT NOT NULL,
    password_hash     TEXT NOT NULL,
    workspace_name    TEXT,
    invite_hash       BYTEA,
    join_workspace_id BIGINT REFERENCES workspaces (id) ON DELETE CASCADE,
    expires_at        TIMESTAMPTZ NOT NULL,
    consumed_at       TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (num_nonnulls(workspace_name, invite_hash, join_workspace_id) = 1)
);
CREATE INDEX signup_requests_expiry ON signup_requests (expires_at);

CREATE TABLE workspace_domains (
    workspace_id BIGINT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    domain       TEXT NOT NULL CHECK (domain = lower(domain)),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, domain)
);

CREATE TABLE email_outbox (
    id              BIGSERIAL PRIMARY KEY,
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body            TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at         TIMESTAMPTZ,
    failed_at       TIMESTAMPTZ,
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX email_outbox_due ON email_outbox (next_attempt_at)
    WHERE sent_at IS NULL AND failed_at IS NULL;
