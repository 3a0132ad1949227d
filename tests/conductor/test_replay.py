"""Replay: every stored history still replays with today's workflow code, and a reordered
workflow does not (so this test can fail). Regenerate histories only for a deliberate,
compatible change: `python -m tests.conductor.record_histories`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from control.workflows import DeleteVideoWorkflow, TranscodeVideoWorkflow
from tests.conductor.record_histories import HISTORIES
from tests.conductor.reordered_workflow import ReorderedTranscodeWorkflow
from vora import jobs

STORED = sorted(HISTORIES.glob("*.json"))


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def workflow_type(path: Path) -> str:
    first = json.loads(path.read_text())["events"][0]
    return str(first["workflowExecutionStartedEventAttributes"]["workflowType"]["name"])


def test_histories_cover_both_workflows() -> None:
    assert {workflow_type(p) for p in STORED} == {jobs.TRANSCODE_WORKFLOW, jobs.DELETE_WORKFLOW}
    assert {p.stem for p in STORED} >= {"transcode_ready", "transcode_bad_media",
                                        "transcode_cancelled", "delete_processing"}


@pytest.mark.parametrize("path", STORED, ids=lambda p: p.stem)
async def test_stored_history_replays(path: Path) -> None:
    replayer = Replayer(workflows=[TranscodeVideoWorkflow, DeleteVideoWorkflow])
    await replayer.replay_workflow(load(path))


@pytest.mark.parametrize("name", ["transcode_ready", "transcode_bad_media"])
async def test_a_reordered_workflow_fails_replay(name: str) -> None:
    replayer = Replayer(workflows=[ReorderedTranscodeWorkflow])
    with pytest.raises(NondeterminismError):
        await replayer.replay_workflow(load(HISTORIES / f"{name}.json"))

