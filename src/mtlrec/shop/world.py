"""The shop's latent state: users, items, the query pool and the true relevance.

Every observed value is drawn from latent variables no model sees: each user's category taste,
price sensitivity and click/buy propensities, each item's quality, and the relevance of each
query to each item. Deterministic for a seed: each component draws from its own stream of one
`SeedSequence` (`streams`), so resizing one part leaves the others' draws intact.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np

from mtlrec.config import SimulateConfig, SimulationSize
from mtlrec.shop.catalog import BRANDS, CATALOG, COLORS, GROUP_OF, MODIFIERS, TITLE_TEMPLATES

DAY_NS = 86_400 * 10**9


# Standard deviations of what no observable attribute explains (see the module docstring).
# "relevance": the (query, item) pair's own part, which no model can learn for a query it has
# not seen (judgements are split by query): at 0.15 it alone put the oracle 0.008 relevance AUC
# above what the true structure reaches (0.969 vs 0.976 on 100,000 judgements).
IDIOSYNCRATIC = {
    "click_bias": 0.05,
    "buy_bias": 0.05,
    "price_sensitivity": 0.05,
    "quality": 0.05,
    "relevance": 0.05,
}


# Dirichlet concentration of each user's own category taste on top of the demographic tilts:
# large, so a user's taste is mostly that of their age, gender and city tier.
TASTE_CONCENTRATION = 50.0


TYPO_RATE = 0.04  # share of distinct queries misspelled


@dataclass(frozen=True)
class Users:
    ids: np.ndarray  # (U,) int64
    signup_ns: np.ndarray  # (U,) int64 ns since epoch
    age_bucket: np.ndarray  # (U,) 0..6
    gender: np.ndarray  # (U,) object, F/M/U
    city_tier: np.ndarray  # (U,) 1..5
    preference: np.ndarray  # (U, C) category shares, rows sum to 1
    price_sensitivity: np.ndarray  # (U,) >= 0
    activity: np.ndarray  # (U,) share of all requests, sums to 1
    click_bias: np.ndarray  # (U,)
    buy_bias: np.ndarray  # (U,)


@dataclass(frozen=True)
class Items:
    ids: np.ndarray  # (I,) int64
    created_ns: np.ndarray  # (I,)
    title: np.ndarray  # (I,) object
    category_label: np.ndarray  # (I,) object, may be "unknown" although `category` is known
    brand_label: np.ndarray  # (I,) object
    price: np.ndarray  # (I,) float64
    category: np.ndarray  # (I,) index into CATALOG
    subtype: np.ndarray  # (I,) index into its category's subtypes
    brand: np.ndarray  # (I,) index into BRANDS, -1 for a generic item
    color: np.ndarray  # (I,) index into COLORS
    modifiers: np.ndarray  # (I, 2) indices into MODIFIERS: its material and feature
    quality: np.ndarray  # (I,)
    relative_price: np.ndarray  # (I,) z-score of log price within its category
    popularity: np.ndarray  # (I,) > 0


@dataclass(frozen=True)
class Queries:
    text: np.ndarray  # (Q,) object, unique
    category: np.ndarray  # (Q,)
    subtype: np.ndarray  # (Q,) -1 when the query names no subtype
    brand: np.ndarray  # (Q,) -1 when none
    color: np.ndarray  # (Q,) -1 when none
    modifier: np.ndarray  # (Q,) -1 when none
    popularity: np.ndarray  # (Q,) > 0


@dataclass(frozen=True)
class Shop:
    users: Users
    items: Items
    queries: Queries
    relevance: np.ndarray  # (Q, I) latent relevance of each pool query to each item


STREAMS = ("users", "items", "queries", "relevance", "traffic", "outcomes", "judgments")


def streams(seed: int) -> dict[str, np.random.Generator]:
    # One independent stream per component: resizing one part leaves the others' draws intact.
    children = np.random.SeedSequence(seed).spawn(len(STREAMS))
    return {name: np.random.default_rng(s) for name, s in zip(STREAMS, children, strict=True)}


def epoch_ns(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 10**9


def unique_ids(rng: np.random.Generator, n: int, low: int) -> np.ndarray:
    # Sparse, sorted ids (not 0..n-1) so that code mixing up ids and row numbers fails loudly.
    return np.sort(rng.choice(np.arange(low, low + 20 * n + 1000), size=n, replace=False))


def _preferences(
    rng: np.random.Generator, age: np.ndarray, gender: np.ndarray, tier: np.ndarray
) -> np.ndarray:
    """(U, C) category shares: tilted by age, gender and city tier, plus a little of one's own."""
    n_categories = len(CATALOG)
    # Demographic tilts make the profile informative, even for users with little history.
    age_tilt = rng.normal(0.0, 0.7, (7, n_categories))
    gender_tilt = rng.normal(0.0, 0.7, (3, n_categories))
    tier_tilt = rng.normal(0.0, 0.7, (6, n_categories))  # tiers are 1..5
    tilt = age_tilt[age] + gender_tilt[gender] + tier_tilt[tier]  # (U, C)
    own = rng.dirichlet(np.full(n_categories, TASTE_CONCENTRATION), size=len(age))
    shares = own * np.exp(tilt)
    shares /= shares.sum(axis=1, keepdims=True)
    # A floor: everyone clicks outside their favourites now and then.
    return 0.9 * shares + 0.1 / n_categories


def make_users(rng: np.random.Generator, n: int, start_ns: int) -> Users:
    age = rng.choice(7, size=n, p=[0.08, 0.22, 0.24, 0.18, 0.13, 0.09, 0.06])
    gender = rng.choice(3, size=n, p=[0.49, 0.45, 0.06])
    tier = rng.choice(5, size=n, p=[0.2, 0.3, 0.25, 0.15, 0.1]) + 1
    # Lower-tier cities and younger users watch prices more.
    sensitivity = rng.normal(
        0.6 + 0.15 * (tier - 3) - 0.05 * (age - 3), IDIOSYNCRATIC["price_sensitivity"]
    )
    # Heavy-tailed activity: a few users produce a large share of the traffic.
    activity = rng.lognormal(0.0, 1.2, size=n)
    return Users(
        ids=unique_ids(rng, n, low=100_000),
        signup_ns=start_ns - rng.integers(DAY_NS, 3 * 365 * DAY_NS, size=n),
        age_bucket=age,
        gender=np.array(["F", "M", "U"], dtype=object)[gender],
        city_tier=tier,
        preference=_preferences(rng, age, gender, tier),
        price_sensitivity=np.clip(sensitivity, 0.0, None),
        activity=activity / activity.sum(),
        click_bias=rng.normal(0.0, IDIOSYNCRATIC["click_bias"], size=n),
        buy_bias=rng.normal(0.0, IDIOSYNCRATIC["buy_bias"], size=n),
    )


def _assign_categories(rng: np.random.Generator, n: int) -> np.ndarray:
    # Every category gets an item before any gets a second, so small shops still cover them all.
    n_categories = len(CATALOG)
    first = np.arange(min(n, n_categories))
    weights = rng.dirichlet(np.full(n_categories, 5.0))
    rest = rng.choice(n_categories, size=max(n - n_categories, 0), p=weights)
    return rng.permutation(np.concatenate([first, rest]))


def _draw_attributes(rng: np.random.Generator, category: np.ndarray) -> dict[str, np.ndarray]:
    """Per-item subtype, brand, color, material and feature, from its category's vocabulary."""
    u = rng.random((len(category), 6))
    rows: dict[str, list] = {k: [] for k in ("subtype", "brand", "color", "material", "feature")}
    for i, c in enumerate(category):
        spec = CATALOG[c]
        rows["subtype"].append(int(u[i, 0] * len(spec.subtypes)))
        # A few generic items carry no brand at all.
        brand = spec.brands[int(u[i, 1] * len(spec.brands))]
        rows["brand"].append(-1 if u[i, 5] < 0.04 else BRANDS.index(brand))
        rows["color"].append(COLORS.index(spec.colors[int(u[i, 2] * len(spec.colors))]))
        rows["material"].append(MODIFIERS.index(spec.materials[int(u[i, 3] * len(spec.materials))]))
        rows["feature"].append(MODIFIERS.index(spec.features[int(u[i, 4] * len(spec.features))]))
    return {k: np.array(v, dtype=np.int64) for k, v in rows.items()}


def _title(rng: np.random.Generator, category: int, attributes: tuple[int, ...]) -> str:
    subtype, brand, color, material, feature = attributes
    template = TITLE_TEMPLATES[rng.integers(len(TITLE_TEMPLATES))]
    return template.format(
        brand="" if brand < 0 else BRANDS[brand] + " ",
        subtype=CATALOG[category].subtypes[subtype],
        color=COLORS[color],
        material=MODIFIERS[material],
        feature=MODIFIERS[feature],
    )


def _labels(
    rng: np.random.Generator, category: np.ndarray, brand: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The `category` and `brand` strings, with the occasional missing (`unknown`) label."""
    category_label = np.array([CATALOG[c].name for c in category], dtype=object)
    category_label[rng.random(len(category)) < 0.02] = "unknown"
    brand_label = np.array([BRANDS[b] if b >= 0 else "unknown" for b in brand], dtype=object)
    brand_label[rng.random(len(brand)) < 0.01] = "unknown"
    return category_label, brand_label


def _price_and_quality(
    rng: np.random.Generator, category: np.ndarray, brand: np.ndarray, modifiers: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Latent quality, price (lognormal per category) and price relative to the category.

    Quality follows the brand and the product's feature and material (words of its title), so a
    model can learn it from the catalogue and the clicks; only a small part is the item's own."""
    premium = np.append(rng.normal(0.0, 0.5, len(BRANDS)), -0.3)[brand]  # brand -1: generic
    word_value = rng.normal(0.0, 0.4, len(MODIFIERS))  # "Brushless" is worth more than "Kit"
    quality = (
        0.8 * premium
        + word_value[modifiers[:, 1]]  # the feature
        + 0.5 * word_value[modifiers[:, 0]]  # the material
        + rng.normal(0.0, IDIOSYNCRATIC["quality"], len(category))
    )
    # Better brands and better items cost more: price alone is not a signal of a bad deal.
    relative_price = 0.5 * premium + 0.3 * quality + rng.normal(0.0, 0.8, len(category))
    median = np.array([c.price_median for c in CATALOG])[category]
    sigma = np.array([c.price_sigma for c in CATALOG])[category]
    price = np.maximum(np.round(median * np.exp(sigma * relative_price)), 1.0) - 0.01
    z = (np.log(price) - np.log(median)) / sigma
    return quality, price, z


def make_items(rng: np.random.Generator, n: int, start_ns: int) -> Items:
    category = _assign_categories(rng, n)
    attr = _draw_attributes(rng, category)
    parts = np.stack([attr[k] for k in ("subtype", "brand", "color", "material", "feature")], 1)
    titles = [_title(rng, c, tuple(a)) for c, a in zip(category, parts, strict=True)]
    category_label, brand_label = _labels(rng, category, attr["brand"])
    modifiers = np.stack([attr["material"], attr["feature"]], axis=1)
    quality, price, relative_price = _price_and_quality(rng, category, attr["brand"], modifiers)
    return Items(
        ids=unique_ids(rng, n, low=5_000_000),
        created_ns=start_ns - rng.integers(DAY_NS, 2 * 365 * DAY_NS, size=n),
        title=np.array(titles, dtype=object),
        category_label=category_label,
        brand_label=brand_label,
        price=price,
        category=category,
        subtype=attr["subtype"],
        brand=attr["brand"],
        color=attr["color"],
        modifiers=modifiers,
        quality=quality,
        relative_price=relative_price,
        popularity=np.exp(0.7 * quality + rng.normal(0.0, 0.8, n)),
    )


def _typo(rng: np.random.Generator, text: str) -> str:
    """Swap two adjacent letters or drop one, inside a word of at least four letters."""
    words = text.split(" ")
    long_words = [i for i, w in enumerate(words) if len(w) >= 4]
    if not long_words:
        return text
    i = long_words[rng.integers(len(long_words))]
    word, at = words[i], int(rng.integers(1, len(words[i]) - 1))
    if rng.random() < 0.5:
        words[i] = word[: at - 1] + word[at] + word[at - 1] + word[at + 1 :]
    else:
        words[i] = word[:at] + word[at + 1 :]
    return " ".join(words)


def draw_query(rng: np.random.Generator, category: int) -> tuple[str, int, int, int, int]:
    """One query for a category: (text, subtype, brand, color, modifier), -1 for unnamed parts."""
    spec = CATALOG[category]
    roll = rng.random(5)
    subtype, brand, color, modifier = -1, -1, -1, -1
    if roll[0] < 0.4:
        term = spec.name
    elif roll[0] < 0.7:
        term = spec.synonyms[rng.integers(len(spec.synonyms))]
    else:
        subtype = int(rng.integers(len(spec.subtypes)))
        term = spec.subtypes[subtype]
        # A subtype worded like the category's own name or a synonym ("sofa", "loveseat" for a
        # sofa) asks for any of them: a rater grades the words of the query, not how it was
        # drawn, so the same words must mean the same intent.
        if term.lower() in (spec.name, *spec.synonyms):
            subtype = -1
    if roll[1] < 0.35:
        brand = BRANDS.index(spec.brands[rng.integers(len(spec.brands))])
    if roll[2] < 0.25:
        color = COLORS.index(spec.colors[rng.integers(len(spec.colors))])
    if roll[3] < 0.25:
        words = spec.materials + spec.features
        modifier = MODIFIERS.index(words[rng.integers(len(words))])
    parts = [COLORS[color] if color >= 0 else "", MODIFIERS[modifier] if modifier >= 0 else ""]
    brand_word = BRANDS[brand] if brand >= 0 else ""
    # People put the brand first more often than last ("bosch drill" over "drill bosch").
    parts = [brand_word, *parts, term] if roll[4] < 0.75 else [*parts, term, brand_word]
    text = " ".join(p.lower() for p in parts if p)
    return text, subtype, brand, color, modifier


def make_queries(rng: np.random.Generator, items: Items, n: int) -> Queries:
    """A pool of `n` distinct queries over the categories on sale, with Zipf popularity."""
    present, counts = np.unique(items.category, return_counts=True)
    seen: dict[str, tuple[int, ...]] = {}
    for _ in range(50 * n):  # bounded: a tiny catalogue may have fewer distinct queries
        if len(seen) == n:
            break
        category = int(rng.choice(present, p=counts / counts.sum()))
        text, *intent = draw_query(rng, category)
        typo = rng.random() < TYPO_RATE
        seen.setdefault(_typo(rng, text) if typo else text, (category, *intent, typo))
    intents = np.array(list(seen.values()), dtype=np.int64).reshape(-1, 6)
    text = np.array(list(seen), dtype=object)
    # Zipf over a random order, damped for long (specific) queries and for misspellings: the
    # head of the query log is short and correctly spelled.
    n_named = (intents[:, 1:5] >= 0).sum(axis=1)
    damping = 0.6**n_named * np.where(intents[:, 5] == 1, 0.05, 1.0)
    popularity = damping / (1.0 + rng.permutation(len(text))) ** 0.9
    return Queries(text, *intents[:, :5].T, popularity=popularity)


def _match(
    asked: np.ndarray, has: np.ndarray, same: np.ndarray, bonus: float, off: float, penalty: float
) -> np.ndarray:
    """(Q, I) relevance term: `bonus` when the item has what the query names (`off` when it is in
    another category), minus `penalty` when an item of the right category lacks it."""
    asked = (asked >= 0)[:, None]
    return np.where(asked & has, np.where(same, bonus, off), np.where(asked & same, -penalty, 0))


def relevance(rng: np.random.Generator, queries: Queries, items: Items) -> np.ndarray:
    """(Q, I) latent relevance in [0, 3], what a careful rater would grade.

    It scores the query's intent (its category, and any subtype, brand, color, material or
    feature it names) against the same words in the title, so a synonym or a typo does not lower
    it: "couch" asks for a sofa. A model has to learn that from text and clicks.
    """
    same = queries.category[:, None] == items.category[None, :]
    related = (GROUP_OF[queries.category][:, None] == GROUP_OF[items.category][None, :]) & ~same
    graded = np.where(same, 1.9, np.where(related, 0.6, 0.1))
    same_subtype = same & (queries.subtype[:, None] == items.subtype[None, :])
    graded += _match(queries.subtype, same_subtype, same, 0.5, 0.0, 0.4)
    graded += _match(queries.brand, queries.brand[:, None] == items.brand, same, 0.5, 0.25, 0.7)
    graded += _match(queries.color, queries.color[:, None] == items.color, same, 0.3, 0.1, 0.4)
    has_modifier = (queries.modifier[:, None, None] == items.modifiers[None, :, :]).any(axis=2)
    graded += _match(queries.modifier, has_modifier, same, 0.4, 0.1, 0.3)
    # Pair-level taste that no attribute explains: the irreducible part.
    graded += rng.normal(0.0, IDIOSYNCRATIC["relevance"], graded.shape)
    return np.clip(graded, 0.0, 3.0)


def make_shop(rng: dict[str, np.random.Generator], size: SimulationSize, start: date) -> Shop:
    """The shop drawn from the `streams` it is built of; the traffic, outcome and judgement
    streams are left untouched for the caller."""
    users = make_users(rng["users"], size.n_users, epoch_ns(start))
    items = make_items(rng["items"], size.n_items, epoch_ns(start))
    # Enough distinct queries for the raters and a long tail for the search traffic.
    queries = make_queries(rng["queries"], items, max(2 * size.n_judged_queries, size.n_items))
    return Shop(users, items, queries, relevance(rng["relevance"], queries, items))


def build_shop(config: SimulateConfig) -> Shop:
    """The shop of `config`'s seed and preset: the same one `mtlrec land` simulated."""
    return make_shop(streams(config.seed), config.active, config.start_date)
