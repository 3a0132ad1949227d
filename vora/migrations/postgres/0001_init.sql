-- Vora's metadata: videos, finished uploads, the transactional outbox, farm nodes.
-- Control owns every table here; no other part writes the database.

CREATE TABLE videos (
    id                uuid PRIMARY KEY,
    owner             text NOT NULL,
    title             text NOT NULL DEFAULT '',
    description       text NOT NULL DEFAULT '',
    state             text NOT NULL
                      CHECK (state IN ('CREATED', 'PROCESSING', 'READY', 'FAILED')),
    -- The seed's column: the master manifest's object key once READY.
    manifest_url      text NOT NULL DEFAULT '',
    thumbnail_key     text NOT NULL DEFAULT '',
    upload_id         text UNIQUE,
    renditions        jsonb NOT NULL DEFAULT '[]'::jsonb,
    duration_seconds  double precision NOT NULL DEFAULT 0,
    failure_reason    text NOT NULL DEFAULT '',
    progress_phase    text NOT NULL DEFAULT '',
    progress_percent  double precision NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX videos_owner_created_idx ON videos (owner, created_at DESC, id DESC);

-- Uploads the edge reported complete (UploadCompleted), before or after a video claims them.
CREATE TABLE uploads (
    upload_id     text PRIMARY KEY CHECK (upload_id ~ '^[0-9a-f]{32}$'),
    subject       text NOT NULL,
    size_bytes    bigint NOT NULL CHECK (size_bytes >= 0),
    sha256        text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    metadata      jsonb NOT NULL DEFAULT '{}'::jsonb,
    completed_at  timestamptz NOT NULL DEFAULT now()
);

-- Work for Temporal written in the same transaction as the state change it follows.
CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,
    kind        text NOT NULL,
    video_id    uuid NOT NULL,
    payload     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    attempts    integer NOT NULL DEFAULT 0,
    last_error  text NOT NULL DEFAULT '',
    sent_at     timestamptz
);
CREATE INDEX outbox_pending_idx ON outbox (id) WHERE sent_at IS NULL;

CREATE TABLE nodes (
    node_id          text PRIMARY KEY,
    hostname         text NOT NULL,
    version          text NOT NULL DEFAULT '',
    ffmpeg_version   text NOT NULL DEFAULT '',
    gpus             jsonb NOT NULL DEFAULT '[]'::jsonb,
    cpu_slots_total  integer NOT NULL DEFAULT 0,
    cpu_slots_busy   integer NOT NULL DEFAULT 0,
    running_jobs     jsonb NOT NULL DEFAULT '[]'::jsonb,
    draining         boolean NOT NULL DEFAULT false,
    jobs_completed   bigint NOT NULL DEFAULT 0,
    output_seconds   double precision NOT NULL DEFAULT 0,
    registered_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at     timestamptz NOT NULL DEFAULT now()
);
