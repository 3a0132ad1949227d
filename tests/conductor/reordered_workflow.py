"""A deliberately broken version of the transcode workflow: it probes before recording the
"probing" phase, so its commands come in another order than the stored histories'.
Replaying them with it must fail; that proves the replay test can catch a change."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from control.ladder import TranscodeSettings, plan_ladder
    from control.workflows import MEDIA_RETRY, TranscodeOutcome, TranscodeVideoWorkflow
    from vora import jobs
    from vora.jobs import ProbeInput, ProbeResult, TranscodeResult, TranscodeWorkflowInput


@workflow.defn(name=jobs.TRANSCODE_WORKFLOW)
class ReorderedTranscodeWorkflow(TranscodeVideoWorkflow):
    @workflow.run
    async def run(self, job: TranscodeWorkflowInput) -> TranscodeOutcome:
        return await super().run(job)

    async def _probe_and_transcode(self, job: TranscodeWorkflowInput,
                                   config: TranscodeSettings) -> TranscodeResult:
        probe = await workflow.execute_activity(
            jobs.PROBE_SOURCE, ProbeInput(video_id=job.video_id, upload_id=job.upload_id),
            result_type=ProbeResult, task_queue=job.farm_task_queue,
            start_to_close_timeout=timedelta(minutes=1), retry_policy=MEDIA_RETRY)
        await self._enter_phase("probing", 0.0)  # moved below the probe: the change
        plan = plan_ladder(probe, config)
        await self._enter_phase("transcoding", 0.0)
        return await self._run_transcode(job, config, plan, probe.duration_seconds)
