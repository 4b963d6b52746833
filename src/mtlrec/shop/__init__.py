"""The synthetic shop: users, items, search and feed traffic, rater judgements, the truth.

Every observed value is drawn from latent variables that no model sees: each user's category
preferences, price sensitivity and click/buy propensities, each item's quality, and the relevance
of each query to each item. The ground truth written beside the raw batches (the click and
purchase probabilities of every impression, the latent relevance of every judged pair) gives the
oracle metrics: the ceiling a perfect model would reach on the same data.

Click and purchase share some causes and not others, so the two tasks are related but not the
same: a click follows category affinity, relevance and the position examined; a purchase follows
item quality and price (against the user's sensitivity) much more than the click does.

Learnable by design: behaviour follows what a model can observe (demographics, category, brand,
the title's words, price, the query's match with the title, position), and each user's and
item's idiosyncratic part is small (`IDIOSYNCRATIC`). A shop whose users each had a taste of
their own that ~20 impressions could not reveal would put the oracle out of any model's reach
(measured: a logistic regression knowing the true structure and the true query-item relevance
reached 0.755 CTR AUC against the oracle's 0.803), and the oracle comparison would then measure
the data, not the model. How close a model can come on the default shop:
`benchmarks/bench_ceiling.py`.

Deterministic for a seed: each component draws from its own stream of one `SeedSequence`
(`streams`), so the same config builds the same shop and the same traffic, and resizing one part
leaves the others' draws intact.

The public API (in memory; `mtlrec.data.simulate` writes it as landing batches):

- `build_shop(config)`: the shop's latent state (`Shop`: `Users`, `Items`, `Queries` and their
  (query, item) relevance) for a simulate config, the same shop `mtlrec land` simulated;
  `streams(seed)` its random streams, `make_shop` the shop drawn from given streams,
  `relevance(rng, queries, items)` the relevance model;
- `simulate_day`, `concat_traffic`, `pick_queries`: traffic (`Traffic`: who was shown what, where);
- `calibrate`, `outcome_probabilities`, `draw_outcomes`: the shoppers' clicks and purchases, with
  the intercepts fitted on the history (`Behaviour`; `save_behaviour`, `load_behaviour` keep it
  beside the ground truth);
- `make_judgments`, `judgment_days`: rater judgements and the days they are given;
- the vocabularies: `CATALOG` (of `Category`), `BRANDS`, `COLORS`, `MODIFIERS`, `GROUP_OF`, and
  `MAX_LIST_LENGTH`, `IDIOSYNCRATIC`, `DAY_NS`, `epoch_ns`.
"""

from mtlrec.shop.catalog import BRANDS, CATALOG, COLORS, GROUP_OF, MODIFIERS, Category
from mtlrec.shop.judgments import judgment_days, make_judgments
from mtlrec.shop.outcomes import (
    Behaviour,
    calibrate,
    draw_outcomes,
    load_behaviour,
    outcome_probabilities,
    save_behaviour,
)
from mtlrec.shop.traffic import MAX_LIST_LENGTH, Traffic, concat_traffic, pick_queries, simulate_day
from mtlrec.shop.world import (
    DAY_NS,
    IDIOSYNCRATIC,
    Items,
    Queries,
    Shop,
    Users,
    build_shop,
    epoch_ns,
    make_shop,
    relevance,
    streams,
)

__all__ = [
    "BRANDS", "CATALOG", "COLORS", "DAY_NS", "GROUP_OF", "IDIOSYNCRATIC", "MAX_LIST_LENGTH",
    "MODIFIERS", "Behaviour", "Category", "Items", "Queries", "Shop", "Traffic", "Users",
    "build_shop", "calibrate", "concat_traffic", "draw_outcomes", "epoch_ns", "judgment_days",
    "load_behaviour", "make_judgments", "make_shop", "outcome_probabilities", "pick_queries",
    "relevance", "save_behaviour", "simulate_day", "streams",
]  # fmt: skip
