"""Data validation: Great Expectations suites over the raw contract, the gate, quarantine."""
