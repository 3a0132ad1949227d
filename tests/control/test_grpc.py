"""VideoService and UploadCallbackService over real grpc.aio channels, on the real
PostgreSQL and Temporal of the stack."""

from __future__ import annotations

import time
from collections.abc import Awaitable

import grpc
import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError

from control.activities import ILLEGAL_TRANSITION_ERROR, BookkeepingActivities
from tests.control.conftest import User, described, make_user, report_upload
from vora import jobs, tokens
from vora.config import Settings
from vora.v1 import upload_pb2, upload_pb2_grpc, video_pb2, video_pb2_grpc

Video = video_pb2.Video
Metadata = tuple[tuple[str, str], ...]


async def create(stub: video_pb2_grpc.VideoServiceAsyncStub, user: User,
                 title: str = "clip") -> video_pb2.Video:
    response = await stub.CreateVideo(video_pb2.CreateVideoRequest(title=title),
                                      metadata=user.metadata)
    video: video_pb2.Video = response.video
    return video


async def processing_video(stub: video_pb2_grpc.VideoServiceAsyncStub,
                           uploads: upload_pb2_grpc.UploadCallbackServiceAsyncStub,
                           service: Metadata, user: User) -> video_pb2.Video:
    video = await create(stub, user)
    upload_id = await report_upload(uploads, service, user.subject)
    response = await stub.CompleteUpload(video_pb2.CompleteUploadRequest(
        video_id=video.id, upload_id=upload_id), metadata=user.metadata)
    processing: video_pb2.Video = response.video
    return processing


async def expect_code(call: Awaitable[object], code: grpc.StatusCode) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code, caught.value.details()
    return caught.value.details() or ""


async def test_create_returns_a_signed_upload_token(
        videos_stub: video_pb2_grpc.VideoServiceAsyncStub, alice: User,
        test_settings: Settings) -> None:
    response = await videos_stub.CreateVideo(
        video_pb2.CreateVideoRequest(title="Holiday", description="beach", size_bytes=5000),
        metadata=alice.metadata)
    assert response.video.state == Video.STATE_CREATED
    assert response.video.owner == alice.subject
    assert response.upload_url == test_settings.edge_public_url
    claims = tokens.verify_upload(tokens.Keyring.from_settings(test_settings),
                                  response.upload_token)
    assert (claims.subject, claims.max_size) == (alice.subject, 5000)
    assert claims.expires_at == response.upload_token_expire_time.seconds > time.time()


async def test_list_is_newest_first_by_cursor(
        videos_stub: video_pb2_grpc.VideoServiceAsyncStub, alice: User, bob: User) -> None:
    made = [(await create(videos_stub, alice, f"v{i}")).id for i in range(5)]
    await create(videos_stub, bob)
    seen: list[str] = []
    token = ""
    for _ in range(3):
        page = await videos_stub.ListVideos(
            video_pb2.ListVideosRequest(page_size=2, page_token=token), metadata=alice.metadata)
        seen += [v.id for v in page.videos]
        token = page.next_page_token
        if not token:
            break
    assert seen == made[::-1]
    await expect_code(videos_stub.ListVideos(video_pb2.ListVideosRequest(
        page_token="not-a-cursor"), metadata=alice.metadata), grpc.StatusCode.INVALID_ARGUMENT)


async def test_complete_upload_starts_one_workflow_and_is_idempotent(
        videos_stub: video_pb2_grpc.VideoServiceAsyncStub,
        uploads_stub: upload_pb2_grpc.UploadCallbackServiceAsyncStub, service_metadata: Metadata,
        alice: User, temporal: Client) -> None:
    video = await create(videos_stub, alice)
    upload_id = await report_upload(uploads_stub, service_metadata, alice.subject)
    request = video_pb2.CompleteUploadRequest(video_id=video.id, upload_id=upload_id)
    first = await videos_stub.CompleteUpload(request, metadata=alice.metadata)
    again = await videos_stub.CompleteUpload(request, metadata=alice.metadata)
    assert first.video.state == again.video.state == Video.STATE_PROCESSING
    assert first.video.upload_id == upload_id
    assert (first.video.progress.phase, first.video.progress.percent) == ("queued", 0.0)
    handle = temporal.get_workflow_handle(jobs.transcode_workflow_id(video.id))
    description = await described(temporal, handle.id)
    assert description.workflow_type == jobs.TRANSCODE_WORKFLOW
    assert description.task_queue == jobs.CONTROL_TASK_QUEUE
    assert description.status == WorkflowExecutionStatus.RUNNING
    history = await handle.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    assert upload_id.encode() in started.input.payloads[0].data
    runs = [w async for w in temporal.list_workflows(f"WorkflowId = '{handle.id}'")]
    assert len(runs) == 1


async def test_upload_must_be_complete_and_belong_to_the_caller(
        videos_stub: video_pb2_grpc.VideoServiceAsyncStub,
        uploads_stub: upload_pb2_grpc.UploadCallbackServiceAsyncStub, service_metadata: Metadata,
        alice: User, bob: User) -> None:
    video = await create(videos_stub, alice)
    never_reported = "0" * 32
    details = await expect_code(videos_stub.CompleteUpload(video_pb2.CompleteUploadRequest(
        video_id=video.id, upload_id=never_reported), metadata=alice.metadata),
        grpc.StatusCode.FAILED_PRECONDITION)
    assert "not complete" in details
    bobs_upload = await report_upload(uploads_stub, service_metadata, bob.subject)
    await expect_code(videos_stub.CompleteUpload(video_pb2.CompleteUploadRequest(
        video_id=video.id, upload_id=bobs_upload), metadata=alice.metadata),
        grpc.StatusCode.FAILED_PRECONDITION)
    await expect_code(videos_stub.CompleteUpload(video_pb2.CompleteUploadRequest(
        video_id=video.id, upload_id="../../etc"), metadata=alice.metadata),
        grpc.StatusCode.INVALID_ARGUMENT)


async def test_one_upload_belongs_to_one_video(
        videos_stub: video_pb2_grpc.VideoServiceAsyncStub,
        uploads_stub: upload_pb2_grpc.UploadCallbackServiceAsyncStub, service_metadata: Metadata,
        alice: User) -> None:
    first, second = await create(videos_stub, alice), await create(videos_stub, alice)
    upload_id = await report_upload(uploads_stub, service_metadata, alice.subject)
    await videos_stub.CompleteUpload(video_pb2.CompleteUploadRequest(
        video_id=first.id, upload_id=upload_id), metadata=alice.metadata)
    details = await expect_code(videos_stub.CompleteUpload(video_pb2.CompleteUploadRequest(
        video_id=second.id, upload_id=upload_id), metadata=alice.metadata),
        grpc.StatusCode.FAILED_PRECONDITION)
    assert "another video" in details


async def test_upload_completed_is_idempotent_and_refuses_a_different_report(
        uploads_stub: upload_pb2_grpc.UploadCallbackServiceAsyncStub, service_metadata: Metadata,
        alice: User) -> None:
    request = upload_pb2.UploadCompletedRequest(
        upload_id="a" * 32, size_bytes=10, sha256="b" * 64, subject=alice.subject)
    await uploads_stub.UploadCompleted(request, metadata=service_metadata)
    await uploads_stub.UploadCompleted(request, metadata=service_metadata)
    request.size_bytes = 11
    await expect_code(uploads_stub.UploadCompleted(request, metadata=service_metadata),
                      grpc.StatusCode.FAILED_PRECONDITION)
    await expect_code(uploads_stub.UploadCompleted(request, metadata=alice.metadata),
                      grpc.StatusCode.PERMISSION_DENIED)
    request.sha256 = "nothex"
    await expect_code(uploads_stub.UploadCompleted(request, metadata=service_metadata),
                      grpc.StatusCode.INVALID_ARGUMENT)


async def test_bookkeeping_drives_progress_ready_and_playback(
        videos_stub: video_pb2_grpc.VideoServiceAsyncStub,
        uploads_stub: upload_pb2_grpc.UploadCallbackServiceAsyncStub, service_metadata: Metadata,
        alice: User, bookkeeping: BookkeepingActivities, test_settings: Settings) -> None:
    video = await processing_video(videos_stub, uploads_stub, service_metadata, alice)
    await expect_code(videos_stub.GetPlaybackUrl(video_pb2.GetPlaybackUrlRequest(
        video_id=video.id), metadata=alice.metadata), grpc.StatusCode.FAILED_PRECONDITION)
    await bookkeeping.record_progress(jobs.ProgressUpdate(video.id, "transcoding", 42.5))
    await bookkeeping.record_progress(jobs.ProgressUpdate(video.id, "transcoding", 40.0))
    got = (await videos_stub.GetVideo(video_pb2.GetVideoRequest(video_id=video.id),
                                      metadata=alice.metadata)).video
    assert (got.progress.phase, got.progress.percent) == ("transcoding", 42.5)
    ready = jobs.MarkReadyInput(
        video_id=video.id, duration_seconds=4.0, manifest_key=f"{video.id}/master.m3u8",
        thumbnail_key=f"{video.id}/thumbnail.jpg", renditions=[jobs.RenditionResult(
            "360p", 640, 360, 900_000, 800_000, "avc1.4d401e,mp4a.40.2", 30.0,
            f"{video.id}/360p/playlist.m3u8")])
    await bookkeeping.mark_ready(ready)
    await bookkeeping.mark_ready(ready)  # a retried activity changes nothing
    got = (await videos_stub.GetVideo(video_pb2.GetVideoRequest(video_id=video.id),
                                      metadata=service_metadata)).video  # the gateway's view
    assert got.state == Video.STATE_READY
    assert got.manifest_key == f"{video.id}/master.m3u8"
    assert [(r.name, r.bandwidth, r.codecs) for r in got.renditions] == [
        ("360p", 900_000, "avc1.4d401e,mp4a.40.2")]
    url = await videos_stub.GetPlaybackUrl(video_pb2.GetPlaybackUrlRequest(
        video_id=video.id, ttl_seconds=600), metadata=alice.metadata)
    assert url.url == (f"{test_settings.playback_public_url}/v1/play/{url.token}/"
                       f"{video.id}/master.m3u8")
    keyring = tokens.Keyring.from_settings(test_settings)
    assert tokens.verify_playback(keyring, url.token, video.id) == url.expire_time.seconds
    assert 590 < url.expire_time.seconds - time.time() <= 600


async def test_state_machine_refuses_illegal_transitions_with_the_reason(
        videos_stub: video_pb2_grpc.VideoServiceAsyncStub,
        uploads_stub: upload_pb2_grpc.UploadCallbackServiceAsyncStub, service_metadata: Metadata,
        alice: User, bookkeeping: BookkeepingActivities) -> None:
    created = await create(videos_stub, alice)
    details = await expect_code(videos_stub.RetryProcessing(video_pb2.RetryProcessingRequest(
        video_id=created.id), metadata=alice.metadata), grpc.StatusCode.FAILED_PRECONDITION)
    assert "CREATED" in details and "PROCESSING" in details
    video = await processing_video(videos_stub, uploads_stub, service_metadata, alice)
    await bookkeeping.mark_failed(jobs.MarkFailedInput(video.id, "the file has no video stream"))
    await bookkeeping.mark_failed(jobs.MarkFailedInput(video.id, "the file has no video stream"))
    got = (await videos_stub.GetVideo(video_pb2.GetVideoRequest(video_id=video.id),
                                      metadata=alice.metadata)).video
    assert (got.state, got.failure_reason) == (Video.STATE_FAILED, "the file has no video stream")
    with pytest.raises(ApplicationError) as caught:
        await bookkeeping.mark_ready(jobs.MarkReadyInput(video_id=video.id))
    assert caught.value.non_retryable and caught.value.type == ILLEGAL_TRANSITION_ERROR
    retried = await videos_stub.RetryProcessing(video_pb2.RetryProcessingRequest(
        video_id=video.id), metadata=alice.metadata)
    assert retried.video.state == Video.STATE_PROCESSING
    assert retried.video.failure_reason == ""
    await bookkeeping.mark_ready(jobs.MarkReadyInput(video_id=video.id))
    details = await expect_code(videos_stub.RetryProcessing(video_pb2.RetryProcessingRequest(
        video_id=video.id), metadata=alice.metadata), grpc.StatusCode.FAILED_PRECONDITION)
    assert "READY" in details


async def test_bola_another_users_video_does_not_exist(
        videos_stub: video_pb2_grpc.VideoServiceAsyncStub,
        uploads_stub: upload_pb2_grpc.UploadCallbackServiceAsyncStub, service_metadata: Metadata,
        alice: User, bob: User, bookkeeping: BookkeepingActivities) -> None:
    video = await processing_video(videos_stub, uploads_stub, service_metadata, alice)
    await bookkeeping.mark_ready(jobs.MarkReadyInput(video_id=video.id))
    calls: list[Awaitable[object]] = [
        videos_stub.GetVideo(video_pb2.GetVideoRequest(video_id=video.id), metadata=bob.metadata),
        videos_stub.GetPlaybackUrl(video_pb2.GetPlaybackUrlRequest(video_id=video.id),
                                   metadata=bob.metadata),
        videos_stub.DeleteVideo(video_pb2.DeleteVideoRequest(video_id=video.id),
                                metadata=bob.metadata),
        videos_stub.RetryProcessing(video_pb2.RetryProcessingRequest(video_id=video.id),
                                    metadata=bob.metadata),
        videos_stub.CompleteUpload(video_pb2.CompleteUploadRequest(
            video_id=video.id, upload_id=video.upload_id), metadata=bob.metadata),
    ]
    for call in calls:
        await expect_code(call, grpc.StatusCode.NOT_FOUND)
    listed = await videos_stub.ListVideos(video_pb2.ListVideosRequest(), metadata=bob.metadata)
    assert video.id not in {v.id for v in listed.videos}
    still = await videos_stub.GetVideo(video_pb2.GetVideoRequest(video_id=video.id),
                                       metadata=alice.metadata)
    assert still.video.state == Video.STATE_READY


async def test_delete_hides_at_once_and_starts_the_delete_workflow(
        videos_stub: video_pb2_grpc.VideoServiceAsyncStub,
        uploads_stub: upload_pb2_grpc.UploadCallbackServiceAsyncStub, service_metadata: Metadata,
        alice: User, bookkeeping: BookkeepingActivities, temporal: Client) -> None:
    video = await processing_video(videos_stub, uploads_stub, service_metadata, alice)
    request = video_pb2.DeleteVideoRequest(video_id=video.id)
    await videos_stub.DeleteVideo(request, metadata=alice.metadata)
    await videos_stub.DeleteVideo(request, metadata=alice.metadata)  # harmless again
    await expect_code(videos_stub.GetVideo(video_pb2.GetVideoRequest(video_id=video.id),
                                           metadata=alice.metadata), grpc.StatusCode.NOT_FOUND)
    listed = await videos_stub.ListVideos(video_pb2.ListVideosRequest(), metadata=alice.metadata)
    assert video.id not in {v.id for v in listed.videos}
    description = await described(temporal, jobs.delete_workflow_id(video.id))
    assert description.workflow_type == jobs.DELETE_WORKFLOW
    # Late bookkeeping from the cancelled transcode must not resurrect it.
    await bookkeeping.mark_ready(jobs.MarkReadyInput(video_id=video.id))
    await bookkeeping.mark_deleted(jobs.MarkDeletedInput(video.id))
    await bookkeeping.mark_deleted(jobs.MarkDeletedInput(video.id))
    await expect_code(videos_stub.DeleteVideo(request, metadata=alice.metadata),
                      grpc.StatusCode.NOT_FOUND)
    # Its upload stays claimed: a new video cannot take it over.
    other = await create(videos_stub, alice)
    await expect_code(videos_stub.CompleteUpload(video_pb2.CompleteUploadRequest(
        video_id=other.id, upload_id=video.upload_id), metadata=alice.metadata),
        grpc.StatusCode.FAILED_PRECONDITION)


@pytest.mark.parametrize("case", ["none", "garbage", "expired", "audience", "service"])
async def test_authentication_is_required_and_checked(
        videos_stub: video_pb2_grpc.VideoServiceAsyncStub, test_settings: Settings,
        case: str) -> None:
    from control.auth import mint_token

    metadata: Metadata = {
        "none": (),
        "garbage": (("authorization", "Bearer not.a.jwt"),),
        "expired": (("authorization", f"Bearer {mint_token(test_settings, 'x', -120)}"),),
        "audience": (("authorization", "Bearer " + mint_token(
            test_settings.model_copy(update={"jwt_audience": "other"}), "x")),),
        "service": (("x-vora-service-token", "wrong"),),
    }[case]
    details = await expect_code(videos_stub.ListVideos(video_pb2.ListVideosRequest(),
                                                       metadata=metadata),
                                grpc.StatusCode.UNAUTHENTICATED)
    assert details


async def test_service_token_cannot_act_for_a_user(
        videos_stub: video_pb2_grpc.VideoServiceAsyncStub, service_metadata: Metadata) -> None:
    await expect_code(videos_stub.CreateVideo(video_pb2.CreateVideoRequest(),
                                              metadata=service_metadata),
                      grpc.StatusCode.PERMISSION_DENIED)


async def test_invalid_input_is_refused(videos_stub: video_pb2_grpc.VideoServiceAsyncStub,
                                        test_settings: Settings) -> None:
    user = make_user(test_settings, "carol")
    await expect_code(videos_stub.CreateVideo(video_pb2.CreateVideoRequest(title="x" * 201),
                                              metadata=user.metadata),
                      grpc.StatusCode.INVALID_ARGUMENT)
    await expect_code(videos_stub.CreateVideo(video_pb2.CreateVideoRequest(size_bytes=-1),
                                              metadata=user.metadata),
                      grpc.StatusCode.INVALID_ARGUMENT)
    await expect_code(videos_stub.GetVideo(video_pb2.GetVideoRequest(video_id="'; DROP"),
                                           metadata=user.metadata), grpc.StatusCode.NOT_FOUND)
