"""The reason a FAILED video shows: what the uploader can act on, never internals."""

from __future__ import annotations

import pytest
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    RetryState,
    TimeoutError,
    TimeoutType,
)

from control.ladder import UnplayableSourceError
from control.workflows import Failure, failure_reason
from vora import jobs


def activity_error(cause: BaseException) -> ActivityError:
    error = ActivityError("activity failed", scheduled_event_id=5, started_event_id=6,
                          identity="farm@node1", activity_type=jobs.TRANSCODE,
                          activity_id="5", retry_state=RetryState.MAXIMUM_ATTEMPTS_REACHED)
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(("error", "expected"), [
    (activity_error(ApplicationError("the file is truncated\n  at farm/probe.py:41",
                                     type=jobs.BAD_MEDIA_ERROR, non_retryable=True)),
     Failure("the file is truncated", bad_media=True)),
    (activity_error(ApplicationError("", type=jobs.BAD_MEDIA_ERROR)),
     Failure("the file is not a video Vora can read", bad_media=True)),
    (activity_error(ApplicationError("x" * 1000, type=jobs.BAD_MEDIA_ERROR)),
     Failure("x" * 300, bad_media=True)),
    (UnplayableSourceError("the file has no video stream; upload a video file"),
     Failure("the file has no video stream; upload a video file", bad_media=True)),
    (activity_error(TimeoutError("activity Heartbeat timeout", type=TimeoutType.HEARTBEAT,
                                 last_heartbeat_details=[])),
     Failure("processing timed out while transcoding: the transcoding farm stopped "
             "answering; upload the video again later, or contact support if it keeps "
             "happening", bad_media=False)),
    (activity_error(ApplicationError("S3 500 at boto3/x.py", type="TranscodeFailed")),
     Failure("processing failed while transcoding because of a fault on our side, not in "
             "your file; upload the video again later, or contact support if it keeps "
             "happening", bad_media=False)),
])
def test_failure_reason(error: BaseException, expected: Failure) -> None:
    assert failure_reason(error, "transcoding") == expected
