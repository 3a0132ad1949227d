"""A trivial workflow, in a module of its own so the sandbox imports nothing else."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow


@workflow.defn(name="StackProbeWorkflow")
class StackProbeWorkflow:
    @workflow.run
    async def run(self, name: str) -> str:
        await workflow.sleep(timedelta(milliseconds=10))
        return f"hello {name}"
