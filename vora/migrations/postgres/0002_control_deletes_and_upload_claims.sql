-- Control, issue 4: soft deletes and which video claimed an upload.

-- DeleteVideo hides the video from its owner at once (deleted_at) and the delete
-- workflow removes the row for good (MARK_DELETED) once its objects are gone.
ALTER TABLE videos ADD COLUMN deleted_at timestamptz;

-- An upload belongs to one video forever, even after that video is deleted, so a
-- finished upload can never be claimed a second time.
ALTER TABLE uploads ADD COLUMN video_id uuid;
CREATE UNIQUE INDEX uploads_video_id_idx ON uploads (video_id) WHERE video_id IS NOT NULL;

-- ListVideos pages over the owner's visible videos only.
DROP INDEX videos_owner_created_idx;
CREATE INDEX videos_owner_created_idx ON videos (owner, created_at DESC, id DESC)
    WHERE deleted_at IS NULL;
