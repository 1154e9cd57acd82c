-- Core schema: tenants, identities, chats, membership, messages, reactions.
-- Every table that holds tenant data is reachable from workspaces.id so that
-- queries can always be scoped by the caller's workspace.

CREATE TABLE workspaces (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX workspaces_name_ci ON workspaces (lower(name));

CREATE TABLE users (
    id             BIGSERIAL PRIMARY KEY,
    workspace_id   BIGINT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    fullname       TEXT NOT NULL,
    email          TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_ci ON users (lower(email));
CREATE INDEX users_workspace ON users (workspace_id, id);

-- Refresh tokens are stored hashed (sha256) and rotated on every use. All
-- tokens descending from one sign-in share a family; presenting a token that
-- was already rotated revokes the whole family (token theft detection).
CREATE TABLE refresh_tokens (
    id           BIGSERIAL PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id    UUID NOT NULL,
    token_hash   BYTEA NOT NULL UNIQUE,
    expires_at   TIMESTAMPTZ NOT NULL,
    rotated_at   TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

CREATE TYPE chat_type AS ENUM ('single', 'group', 'private_channel', 'public_channel');

-- last_seq is the per-chat message sequence: assigned only inside the
-- transaction that inserts the message, so it is gap-free and ordered.
-- event_sub numbers the non-message events (edits, deletes, reactions) that
-- happen after message last_seq; together they form the topic stream id
-- "<last_seq>-<event_sub>".
CREATE TABLE chats (
    id            BIGSERIAL PRIMARY KEY,
    workspace_id  BIGINT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    type          chat_type NOT NULL,
    name          TEXT,
    description   TEXT NOT NULL DEFAULT '',
    owner_id      BIGINT NOT NULL REFERENCES users (id),
    last_seq      BIGINT NOT NULL DEFAULT 0,
    event_sub     BIGINT NOT NULL DEFAULT 0,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX chats_workspace_type ON chats (workspace_id, type);

CREATE TABLE chat_members (
    chat_id        BIGINT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    user_id        BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role           TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'admin', 'member')),
    last_read_seq  BIGINT NOT NULL DEFAULT 0,
    joined_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (chat_id, user_id)
);
-- "which chats is this user in" (chat list, gateway subscriptions)
CREATE INDEX chat_members_user ON chat_members (user_id, chat_id);

CREATE TABLE messages (
    id          BIGSERIAL PRIMARY KEY,
    chat_id     BIGINT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    seq         BIGINT NOT NULL,
    sender_id   BIGINT NOT NULL REFERENCES users (id),
    content     TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    reply_to    BIGINT REFERENCES messages (id) ON DELETE SET NULL,
    mentions    BIGINT[] NOT NULL DEFAULT '{}',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    edited_at   TIMESTAMPTZ,
    deleted_at  TIMESTAMPTZ,
    -- paging and sync read ranges of seq inside one chat
    CONSTRAINT messages_chat_seq UNIQUE (chat_id, seq),
    -- idempotent retries: one message per client-generated id per chat
    CONSTRAINT messages_chat_client UNIQUE (chat_id, client_id)
);
CREATE INDEX messages_sender ON messages (sender_id);

CREATE TABLE reactions (
    message_id  BIGINT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    emoji       TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (message_id, user_id, emoji)
);
