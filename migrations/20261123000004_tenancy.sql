-- Tenancy and sessions (issue 7).
--
-- * Workspace names are display names, not keys: two companies may both be
--   called "Acme". Joining an existing workspace takes an invite.
-- * Users have a workspace role (owner/admin/member) and can be
--   deactivated; a deactivated user cannot sign in or refresh.
-- * Invites are stored hashed (like refresh tokens), expire, may be
--   single-use and may be bound to one e-mail address.
-- * A single chat (direct message) exists at most once per pair of users:
--   single_pair holds "<min user id>:<max user id>" and is unique per
--   workspace, so two concurrent creations cannot both insert.

DROP INDEX workspaces_name_ci;

ALTER TABLE users
    ADD COLUMN role TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'admin', 'member')),
    ADD COLUMN deactivated_at TIMESTAMPTZ;

-- The first user of each existing workspace becomes its owner.
UPDATE users SET role = 'owner'
WHERE id IN (SELECT min(id) FROM users GROUP BY workspace_id);

CREATE TABLE workspace_invites (
    id            BIGSERIAL PRIMARY KEY,
    workspace_id  BIGINT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    token_hash    BYTEA NOT NULL UNIQUE,
    created_by    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email         TEXT,
    single_use    BOOLEAN NOT NULL DEFAULT false,
    uses          INTEGER NOT NULL DEFAULT 0,
    expires_at    TIMESTAMPTZ NOT NULL,
    revoked_at    TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX workspace_invites_workspace ON workspace_invites (workspace_id, id);

ALTER TABLE chats ADD COLUMN single_pair TEXT;
UPDATE chats c SET single_pair = p.pair
FROM (SELECT chat_id, min(user_id)::text || ':' || max(user_id)::text AS pair
      FROM chat_members GROUP BY chat_id) p
WHERE c.type = 'single' AND p.chat_id = c.id
  -- Keep the oldest chat of a pair if a race already created two.
  AND c.id = (SELECT min(c2.id) FROM chats c2 JOIN
              (SELECT chat_id, min(user_id)::text || ':' || max(user_id)::text AS pair
               FROM chat_members GROUP BY chat_id) p2 ON p2.chat_id = c2.id
              WHERE c2.type = 'single' AND c2.workspace_id = c.workspace_id AND p2.pair = p.pair);
CREATE UNIQUE INDEX chats_single_pair ON chats (workspace_id, single_pair)
    WHERE single_pair IS NOT NULL;
