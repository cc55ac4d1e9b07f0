"""End-to-end harness: the real Claude Code client against a scripted local mock of the Messages API.

- `mock_api`: the mock (stdlib HTTP server on 127.0.0.1; also the client's proxy, so nothing leaves
  loopback).
- `scenarios`: the scripts the mock plays, one per scenario.
- `claude_client`: installs the pinned client from npm into a cache, runs a scenario in a scratch HOME.
- `record`: `python -m tests.e2e.record OUTDIR` records hooks.jsonl + transcripts for every scenario
  (what tests/fixtures/recorded/ holds).
"""
