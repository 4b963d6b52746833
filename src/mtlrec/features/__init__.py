"""Features: offline computation, the Feast store (apply, materialize), training sets."""
