"""Evaluation: does the model do what Claude did?

Held-out steps of a dataset are replayed (the conversation up to the point where Claude acted), the
model writes its next action, and the action is compared with Claude's (`metrics`). `runner` does it
for a run and its base model, `store` keeps the results in the `evals` table, `pack` makes the blind
A/B page for people to judge, `intervals` the confidence intervals around every rate and mean.
docs/eval.md defines every metric.
"""
