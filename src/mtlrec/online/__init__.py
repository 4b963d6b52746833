"""The simulated online test: a challenger played against the champion by the shop's shoppers
(A/B and team-draft interleaving, `experiment`), and the feedback loop that lands the sessions a
model served as raw impressions batches (`feedback`)."""
