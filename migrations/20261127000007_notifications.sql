-- Notifications (issue 9): preferences, per-chat settings, the audit of
-- urgent messages, and message priority.
--
-- * notification_preferences: one row per user who changed a default
--   (level all, desktop and sound on, no DND schedule, no keywords).
-- * chat_notification_settings: per user and chat; NULL level inherits the
--   global level; muted_until in the future mutes the chat.
-- * urgent_messages: every urgent message, for abuse review (seed §3.7).

CREATE TABLE notification_preferences (
    user_id      BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    level        TEXT NOT NULL DEFAULT 'all' CHECK (level IN ('all', 'mentions_only', 'off')),
    desktop      BOOLEAN NOT NULL DEFAULT true,
    sound        BOOLEAN NOT NULL DEFAULT true,
    dnd_start    TIME,
    dnd_end      TIME,
    dnd_timezone TEXT,
    keywords     TEXT[] NOT NULL DEFAULT '{}',
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((dnd_start IS NULL) = (dnd_end IS NULL) AND (dnd_start IS NULL) = (dnd_timezone IS NULL))
);

CREATE TABLE chat_notification_settings (
    chat_id     BIGINT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    level       TEXT CHECK (level IN ('all', 'mentions_only', 'off')),
    muted_until TIMESTAMPTZ,
    pinned      BOOLEAN NOT NULL DEFAULT false,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (chat_id, user_id)
);

ALTER TABLE messages ADD COLUMN priority TEXT NOT NULL DEFAULT 'normal'
    CHECK (priority IN ('normal', 'urgent'));

CREATE TABLE urgent_messages (
    message_id BIGINT PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    chat_id    BIGINT NOT NULL,
    sender_id  BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX urgent_messages_sender ON urgent_messages (sender_id, created_at);
