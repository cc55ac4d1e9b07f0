"""Continuous learning: `cra auto` runs training cycles as qualifying turns accumulate (docs/auto.md).

One cycle = sync transcripts -> signals -> dataset build -> SFT -> (GRPO every `rl_every`th cycle)
-> GGUF export -> eval against the promoted model -> promote if not worse.

- `config.py`: the thresholds (one source: `cra stats` and `cra status` read them too) and the
  settings every stage runs with, from `$CRA_HOME/auto.toml`.
- `readiness.py`: qualifying turns (the dataset filters' definition), progress, is a cycle due.
- `lock.py`: one cycle at a time, across processes; a crashed holder releases it with its death.
- `store.py`: the `cycles` and `promotions` tables and the promoted-model pointer file.
- `cycle.py`: the stages, each a child run of the cycle's `runs` row; failures and backoff.
- `trigger.py`: the optional Stop-hook trigger file (`cra auto hook on`).
- `commands.py`: `cra auto once|run|status|hook|config`.
"""
