-- Who a plain channel message can alert (issue 13: large channels).
--
-- A channel message without mentions or urgency alerts only members whose
-- effective level is `all` or who watch keywords
-- (shared/src/store/notification.rs, `recipients`). Finding them used to
-- read every member of the channel with their preferences: ~1 ms per
-- message for 500 members with fresh statistics, 3 ms without, and ten
-- times that for a 5,000-member channel, for a message that usually
-- alerts nobody. These partial indexes hold only the rows that can make a
-- member alertable, so the query starts from them.
CREATE INDEX notification_preferences_alerting ON notification_preferences (user_id)
    WHERE level = 'all' OR cardinality(keywords) > 0;
CREATE INDEX chat_notification_settings_all ON chat_notification_settings (chat_id, user_id)
    WHERE level = 'all';
