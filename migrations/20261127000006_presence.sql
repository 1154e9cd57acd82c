-- Presence (issue 8): the manual state a user set (persists across
-- reconnects; NULL = follow activity) and when they were last seen
-- (written when the last connection closes or a dead gateway is swept).
ALTER TABLE users
    ADD COLUMN presence_manual TEXT CHECK (presence_manual IN ('away', 'dnd', 'brb')),
    ADD COLUMN last_seen_at TIMESTAMPTZ;
