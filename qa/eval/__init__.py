"""Evaluation: question sets, BEIR benchmarks and held-out SQuAD parts, run through the same
`Engine` a user runs, with baselines and reports. Nothing in the pipeline imports it."""
