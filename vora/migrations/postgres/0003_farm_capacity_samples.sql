-- Farm capacity over time (control/capacity.py): one row per sampling tick.
-- taken_at is rounded down to the sampling interval, so several control processes
-- sampling at once write one row (INSERT ... ON CONFLICT DO NOTHING). Rows older than a
-- day are pruned by the sampler.
CREATE TABLE farm_samples (
    taken_at   timestamptz PRIMARY KEY,
    -- approximate backlog of the farm task queue; NULL when Temporal did not answer
    backlog    bigint,
    -- {"cpu": [total, busy], "nvenc": [...], "nvdec": [...]}
    slots      jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- {"<node_id>": [jobs_completed, output_seconds]}: the nodes' counters since they
    -- registered; throughput is the sum of their increases between samples
    counters   jsonb NOT NULL DEFAULT '{}'::jsonb
);
