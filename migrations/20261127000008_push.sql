-- Push notifications (issue 9): the devices users register and the
-- delivery claims that make a push go to a device at most once.
--
-- * push_devices.token is what the platform addresses: an FCM
--   registration token, an APNs device token, a Web Push endpoint URL
--   (with the subscription's p256dh and auth keys), or a webhook URL.
-- * push_deliveries has one row per (message, device) a push worker
--   claimed before sending: a worker that crashes and a job that is
--   delivered twice can never send the same push to a device again.

CREATE TABLE push_devices (
    id         BIGSERIAL PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    platform   TEXT NOT NULL CHECK (platform IN ('fcm', 'apns', 'webpush', 'webhook')),
    token      TEXT NOT NULL,
    p256dh     TEXT,
    auth       TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (user_id, platform, token),
    CHECK (platform <> 'webpush' OR (p256dh IS NOT NULL AND auth IS NOT NULL))
);

CREATE TABLE push_deliveries (
    message_id BIGINT NOT NULL,
    device_id  BIGINT NOT NULL REFERENCES push_devices (id) ON DELETE CASCADE,
    claimed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    outcome    TEXT CHECK (outcome IN ('sent', 'failed', 'unregistered', 'rate_limited')),
    attempts   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (message_id, device_id)
);
CREATE INDEX push_deliveries_claimed ON push_deliveries (claimed_at);
