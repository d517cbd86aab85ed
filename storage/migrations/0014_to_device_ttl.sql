-- e2e_to_device.created_ts: when a send-to-device message was queued, so that messages for a
-- device that never syncs again are deleted after e2ee.to_device_ttl. Rows queued before this
-- migration get 0 and go with the first purge.
ALTER TABLE e2e_to_device ADD COLUMN created_ts BIGINT NOT NULL DEFAULT 0;
CREATE INDEX e2e_to_device_created ON e2e_to_device (created_ts);
