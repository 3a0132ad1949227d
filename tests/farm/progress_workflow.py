"""A workflow that runs the farm's TRANSCODE activity and keeps the progress signals,
as control's workflow does; used to test the farm against a real Temporal worker."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from vora import jobs


@workflow.defn
class ProgressRecordingWorkflow:
    def __init__(self) -> None:
        self.beats: list[jobs.TranscodeHeartbeat] = []

    @workflow.signal(name=jobs.PROGRESS_SIGNAL)
    def progress(self, beat: jobs.TranscodeHeartbeat) -> None:
        self.beats.append(beat)

    @workflow.run
    async def run(self, request: jobs.TranscodeInput) -> tuple[jobs.TranscodeResult,
                                                               list[jobs.TranscodeHeartbeat]]:
        result = await workflow.execute_activity(
            jobs.TRANSCODE, request, result_type=jobs.TranscodeResult,
            start_to_close_timeout=timedelta(minutes=2), heartbeat_timeout=timedelta(seconds=10))
        # Signals sent just before the activity completed may arrive after it.
        await workflow.wait_condition(lambda: any(b.percent == 100.0 for b in self.beats),
                                      timeout=timedelta(seconds=5))
        return result, self.beats
