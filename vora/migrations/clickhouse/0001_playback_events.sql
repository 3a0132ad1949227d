-- The seed's PlaybackEvents table. SQL kept portable down to ClickHouse 18.16
-- (no DateTime64, no LowCardinality). event_id lets dashboards count each event once
-- even when a spool replay wrote it twice.
CREATE TABLE IF NOT EXISTS PlaybackEvents (
    event_id         String,
    video_id         String,
    user_id          String,
    session_id       String,
    event_type       String,
    event_time       DateTime,
    event_ms         UInt16,
    received_time    DateTime,
    position         Float64,
    rendition        String,
    buffer_duration  Float64
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(event_time)
ORDER BY (video_id, event_time, event_id)
