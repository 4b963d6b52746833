"""Evaluation: metrics per task, oracle ceilings from the ground truth, and the
champion/challenger decision."""
