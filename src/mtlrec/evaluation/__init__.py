"""Evaluation: metrics per task, oracle ceilings from the ground truth, the champion/challenger decision."""
