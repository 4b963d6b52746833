"""Two GX core expectations, each with one fix for how our suites use them; importing this
module registers them. Same arguments, checks and rendering as the originals; drop each one
once GX ships the fix.

- `expect_column_quantile_values_to_stay_between` is `expect_column_quantile_values_to_be_
  between`: GX 1.24.1 returns `np.all(...)`, a NumPy bool, as the result's success, and the
  validation results store then fails with "Object of type bool is not JSON serializable" on
  every run, passing or not.
- `expect_column_kl_divergence_to_stay_below` is `expect_column_kl_divergence_to_be_less_than`:
  its suite page fails to render (KeyError 'weights', logged as an error on every Data Docs
  build) when `partition_object` is a suite parameter, which ours is: the reference comes from
  earlier batches. The page then shows the sentence without the chart; the validation pages,
  which hold the actual partition, keep it.
"""

from __future__ import annotations

from typing import Any

from great_expectations.expectations import (
    ExpectColumnKLDivergenceToBeLessThan,
    ExpectColumnQuantileValuesToBeBetween,
)


class ExpectColumnQuantileValuesToStayBetween(ExpectColumnQuantileValuesToBeBetween):
    """Expect the column's quantiles to lie in the given ranges (a storable result)."""

    def _validate(
        self,
        metrics: dict,
        runtime_configuration: dict | None = None,
        execution_engine: Any = None,
    ) -> dict:
        outcome = super()._validate(metrics, runtime_configuration, execution_engine)
        return {**outcome, "success": bool(outcome["success"])}


class ExpectColumnKLDivergenceToStayBelow(ExpectColumnKLDivergenceToBeLessThan):
    """Expect the KL divergence from a partition to stay below a threshold (renders when the
    partition is a suite parameter)."""

    @classmethod
    def _get_kl_divergence_chart(cls, partition_object: dict, header: Any = None) -> Any:
        if "weights" not in partition_object:  # {"$PARAMETER": ...}: nothing to draw yet
            return None
        return super()._get_kl_divergence_chart(partition_object, header=header)
