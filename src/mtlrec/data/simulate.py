"""The synthetic shop: users, items, search and feed impressions, rater judgements, and the truth.

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

Deterministic for a seed: each component draws from its own stream of one `SeedSequence`, and the
files are written by pyarrow in a fixed row order, so the same config writes identical parquet.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mtlrec.config import SimulateConfig, SimulationSize

TABLES = ("users", "items", "impressions", "judgments")
DAY_NS = 86_400 * 10**9
_TS = pa.timestamp("ns", tz="UTC")

USERS_SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("signup_ts", _TS),
        ("age_bucket", pa.int64()),
        ("gender", pa.string()),
        ("city_tier", pa.int64()),
    ]
)
ITEMS_SCHEMA = pa.schema(
    [
        ("item_id", pa.int64()),
        ("title", pa.string()),
        ("category", pa.string()),
        ("brand", pa.string()),
        ("price", pa.float64()),
        ("created_ts", _TS),
    ]
)
IMPRESSIONS_SCHEMA = pa.schema(
    [
        ("impression_id", pa.string()),
        ("event_timestamp", _TS),
        ("user_id", pa.int64()),
        ("item_id", pa.int64()),
        ("scenario", pa.string()),
        ("query", pa.string()),
        ("position", pa.int64()),
        ("click", pa.int64()),
        ("purchase", pa.int64()),
    ]
)
JUDGMENTS_SCHEMA = pa.schema(
    [
        ("query", pa.string()),
        ("item_id", pa.int64()),
        ("relevance", pa.float64()),
        ("judged_at", _TS),
    ]
)
# The truth is never a feature. `true_relevance` of an impression is its query-item relevance
# (null in the feed): it lets the oracle and the tests slice click rates by relevance.
# The raw contract's tables by name (an empty table of each is what a source without it reads).
TABLE_SCHEMAS = {
    "users": USERS_SCHEMA,
    "items": ITEMS_SCHEMA,
    "impressions": IMPRESSIONS_SCHEMA,
    "judgments": JUDGMENTS_SCHEMA,
}

TRUTH_IMPRESSIONS_SCHEMA = pa.schema(
    [
        ("impression_id", pa.string()),
        ("p_click", pa.float64()),
        ("p_purchase_given_click", pa.float64()),
        ("true_relevance", pa.float64()),
    ]
)
TRUTH_JUDGMENTS_SCHEMA = pa.schema(
    [("query", pa.string()), ("item_id", pa.int64()), ("true_relevance", pa.float64())]
)

# Targets that the intercepts are calibrated to: typical e-commerce rates.
# Rates of a search-led shop; high enough that a 2-day test split holds ~4,000 purchases, so a
# 0.01 difference in CVR AUC is above the sampling noise (about 0.02 with 200 purchases).
TARGET_CTR = 0.10
TARGET_PURCHASE_PER_CLICK = 0.20
MAX_LIST_LENGTH = 30
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
N_RATERS = 3


# --------------------------------------------------------------------------------------------
# The catalogue: what the shop sells and how people ask for it.


@dataclass(frozen=True)
class _Category:
    name: str  # the `category` label and the plainest query term
    group: str  # categories of one group are partly relevant to each other's queries
    synonyms: tuple[str, ...]  # query terms for the whole category (a few are also subtypes)
    subtypes: tuple[str, ...]  # the product noun of a title, also a query term
    brands: tuple[str, ...]
    colors: tuple[str, ...]
    materials: tuple[str, ...]
    features: tuple[str, ...]
    price_median: float
    price_sigma: float


# fmt: off
CATALOG: tuple[_Category, ...] = (
    _Category(
        "drill", "tools", ("power drill", "cordless drill", "drill driver"),
        ("Cordless Drill", "Hammer Drill", "Drill Driver", "Impact Driver"),
        ("Bosch", "DeWalt", "Makita", "Ryobi", "Milwaukee"),
        ("Blue", "Yellow", "Teal", "Red", "Green"), ("12V", "18V", "20V"),
        ("Brushless", "Compact", "Kit", "LED Light", "Keyless Chuck"), 120.0, 0.45,
    ),
    _Category(
        "circular saw", "tools", ("saw", "skil saw", "power saw"),
        ("Circular Saw", "Track Saw", "Mini Circular Saw", "Worm Drive Saw"),
        ("DeWalt", "Makita", "Skil", "Bosch", "Metabo"),
        ("Yellow", "Teal", "Red", "Green", "Black"), ("7-1/4 in", "6-1/2 in", "5-1/2 in"),
        ("Cordless", "Corded", "Laser Guide", "Brushless", "Dust Blower"), 140.0, 0.4,
    ),
    _Category(
        "sofa", "furniture", ("couch", "settee", "loveseat"),
        ("Sofa", "Sectional Sofa", "Sleeper Sofa", "Loveseat"),
        ("Ikea", "Ashley", "Zinus", "Rivet", "Novogratz"),
        ("Gray", "Beige", "Navy", "Green", "Charcoal"), ("Velvet", "Linen", "Leather"),
        ("Reversible", "Modular", "3-Seater", "Mid-Century", "Tufted"), 650.0, 0.5,
    ),
    _Category(
        "office chair", "furniture", ("desk chair", "computer chair", "task chair"),
        ("Office Chair", "Ergonomic Chair", "Gaming Chair", "Mesh Task Chair"),
        ("Herman Miller", "Steelcase", "Hbada", "Sihoo", "Ikea"),
        ("Black", "Gray", "White", "Blue"), ("Mesh", "Leather", "Fabric"),
        ("Lumbar Support", "Adjustable Armrests", "Headrest", "Swivel", "Reclining"), 220.0, 0.6,
    ),
    _Category(
        "headphones", "audio", ("earbuds", "earphones", "headset"),
        ("Wireless Headphones", "Over-Ear Headphones", "True Wireless Earbuds",
         "On-Ear Headphones"),
        ("Sony", "Bose", "Sennheiser", "JBL", "Anker"),
        ("Black", "White", "Silver", "Blue", "Rose"), ("Bluetooth 5.3", "USB-C", "Wired"),
        ("Noise Cancelling", "Long Battery", "Foldable", "Water Resistant", "Hi-Res"), 120.0, 0.7,
    ),
    _Category(
        "bluetooth speaker", "audio", ("speaker", "portable speaker", "wireless speaker"),
        ("Bluetooth Speaker", "Portable Speaker", "Smart Speaker", "Party Speaker"),
        ("JBL", "Bose", "Sony", "Anker", "Ultimate Ears"),
        ("Black", "Blue", "Red", "Teal", "White"), ("Fabric", "Rubber", "Aluminum"),
        ("Waterproof", "Long Battery", "Bass Boost", "Voice Assistant", "Rugged"), 90.0, 0.6,
    ),
    _Category(
        "coffee maker", "kitchen", ("coffee machine", "espresso machine", "coffee brewer"),
        ("Coffee Maker", "Espresso Machine", "Drip Coffee Maker", "Single Serve Brewer"),
        ("Breville", "DeLonghi", "Cuisinart", "Keurig", "Mr. Coffee"),
        ("Black", "Stainless", "Red", "White"), ("Stainless Steel", "Glass Carafe", "Plastic"),
        ("Programmable", "12-Cup", "Milk Frother", "Auto Shut-Off", "Grinder"), 110.0, 0.65,
    ),
    _Category(
        "blender", "kitchen", ("smoothie maker", "mixer", "juicer"),
        ("Blender", "Personal Blender", "Countertop Blender", "Immersion Blender"),
        ("Vitamix", "Ninja", "NutriBullet", "Oster", "KitchenAid"),
        ("Black", "Red", "Silver", "White", "Green"), ("Glass Jar", "BPA-Free", "Stainless Steel"),
        ("1000W", "Variable Speed", "Pulse", "Self-Cleaning", "To-Go Cups"), 80.0, 0.6,
    ),
    _Category(
        "running shoes", "sports", ("sneakers", "trainers", "jogging shoes"),
        ("Running Shoes", "Trail Running Shoes", "Road Running Shoes", "Racing Flats"),
        ("Nike", "Adidas", "Asics", "Brooks", "Hoka"),
        ("Black", "White", "Blue", "Red", "Neon"), ("Mesh", "Knit", "Synthetic"),
        ("Cushioned", "Lightweight", "Waterproof", "Wide Fit", "Stability"), 110.0, 0.35,
    ),
    _Category(
        "yoga mat", "sports", ("exercise mat", "workout mat", "fitness mat"),
        ("Yoga Mat", "Travel Yoga Mat", "Thick Exercise Mat", "Cork Yoga Mat"),
        ("Manduka", "Gaiam", "Lululemon", "Liforme", "Adidas"),
        ("Purple", "Black", "Blue", "Green", "Pink"), ("TPE", "Natural Rubber", "Cork"),
        ("Non-Slip", "6mm", "Extra Thick", "Alignment Lines", "Carry Strap"), 45.0, 0.55,
    ),
    _Category(
        "backpack", "travel", ("rucksack", "daypack", "bookbag"),
        ("Backpack", "Hiking Backpack", "Laptop Backpack", "Travel Backpack"),
        ("Osprey", "The North Face", "Herschel", "JanSport", "Deuter"),
        ("Black", "Navy", "Green", "Gray", "Red"), ("Nylon", "Canvas", "Polyester"),
        ("Water Resistant", "30L", "Laptop Sleeve", "Anti-Theft", "Padded Straps"), 75.0, 0.5,
    ),
    _Category(
        "desk lamp", "home", ("table lamp", "reading light", "lamp"),
        ("Desk Lamp", "LED Desk Lamp", "Architect Lamp", "Clamp Lamp"),
        ("Philips", "Ikea", "BenQ", "TaoTronics", "Lepower"),
        ("Black", "White", "Silver", "Gold"), ("Metal", "Aluminum", "Wood"),
        ("Dimmable", "USB Charging", "Touch Control", "Eye-Care", "Adjustable Arm"), 40.0, 0.6,
    ),
    _Category(
        "vacuum cleaner", "home", ("vacuum", "hoover", "stick vacuum"),
        ("Vacuum Cleaner", "Cordless Stick Vacuum", "Robot Vacuum", "Upright Vacuum"),
        ("Dyson", "Shark", "Bissell", "Roborock", "Miele"),
        ("Purple", "Gray", "Red", "Black", "White"), ("HEPA", "Bagless", "Bagged"),
        ("Cordless", "Pet Hair", "Self-Emptying", "Lightweight", "Wi-Fi"), 250.0, 0.6,
    ),
)
# fmt: on


def _vocabulary(*fields: str) -> tuple[str, ...]:
    """Every distinct word of the given catalogue fields, in first-seen order."""
    words = [word for spec in CATALOG for field in fields for word in getattr(spec, field)]
    return tuple(dict.fromkeys(words))


BRANDS = _vocabulary("brands")
COLORS = _vocabulary("colors")
MODIFIERS = _vocabulary("materials", "features")
_GROUP_OF = np.array([sorted({c.group for c in CATALOG}).index(c.group) for c in CATALOG])
# Requests per hour of the day (UTC): quiet at night, a peak in the evening.
# fmt: off
_HOURLY_TRAFFIC = np.array([1, 0.6, 0.4, 0.3, 0.3, 0.5, 1, 2, 3, 3.5, 3.5, 3.5,
                            4, 3.5, 3.5, 3.5, 4, 4.5, 5, 6, 6.5, 6, 4, 2])
# fmt: on
_TITLE_TEMPLATES = (
    "{brand}{subtype} {feature}, {color}, {material}",
    "{brand}{material} {subtype}, {color}, {feature}",
    "{brand}{feature} {subtype} - {material}, {color}",
)


# --------------------------------------------------------------------------------------------
# The public result.


@dataclass(frozen=True)
class SimulationSummary:
    """Counts of what one simulation wrote."""

    users: int
    items: int
    impressions: int
    clicks: int
    purchases: int
    judgments: int
    batches: int
    ctr: float  # clicks / impressions
    cvr: float  # purchases / clicks

    def as_dict(self) -> dict[str, int | float]:
        return asdict(self)

    def __str__(self) -> str:
        return (
            f"users={self.users} items={self.items} impressions={self.impressions} "
            f"clicks={self.clicks} (ctr {self.ctr:.2%}) purchases={self.purchases} "
            f"(cvr {self.cvr:.2%}) judgments={self.judgments} batches={self.batches}"
        )


# --------------------------------------------------------------------------------------------
# Latent state.


@dataclass(frozen=True)
class _Users:
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
class _Items:
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
class _Queries:
    text: np.ndarray  # (Q,) object, unique
    category: np.ndarray  # (Q,)
    subtype: np.ndarray  # (Q,) -1 when the query names no subtype
    brand: np.ndarray  # (Q,) -1 when none
    color: np.ndarray  # (Q,) -1 when none
    modifier: np.ndarray  # (Q,) -1 when none
    popularity: np.ndarray  # (Q,) > 0


@dataclass(frozen=True)
class _Traffic:
    """All impressions of the simulation, one row each, in time order within each day."""

    day: np.ndarray  # (N,)
    time_ns: np.ndarray  # (N,) ns since epoch
    user: np.ndarray  # (N,) index into users
    item: np.ndarray  # (N,) index into items
    query: np.ndarray  # (N,) index into queries, -1 in the feed
    position: np.ndarray  # (N,) 1-based


@dataclass(frozen=True)
class _Shop:
    users: _Users
    items: _Items
    queries: _Queries
    relevance: np.ndarray  # (Q, I) latent relevance of each pool query to each item


_STREAMS = ("users", "items", "queries", "relevance", "traffic", "outcomes", "judgments")


def _streams(seed: int) -> dict[str, np.random.Generator]:
    # One independent stream per component: resizing one part leaves the others' draws intact.
    children = np.random.SeedSequence(seed).spawn(len(_STREAMS))
    return {name: np.random.default_rng(s) for name, s in zip(_STREAMS, children, strict=True)}


def _epoch_ns(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 10**9


def _unique_ids(rng: np.random.Generator, n: int, low: int) -> np.ndarray:
    # Sparse, sorted ids (not 0..n-1) so that code mixing up ids and row numbers fails loudly.
    return np.sort(rng.choice(np.arange(low, low + 20 * n + 1000), size=n, replace=False))


# --------------------------------------------------------------------------------------------
# Users.


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


def _make_users(rng: np.random.Generator, n: int, start_ns: int) -> _Users:
    age = rng.choice(7, size=n, p=[0.08, 0.22, 0.24, 0.18, 0.13, 0.09, 0.06])
    gender = rng.choice(3, size=n, p=[0.49, 0.45, 0.06])
    tier = rng.choice(5, size=n, p=[0.2, 0.3, 0.25, 0.15, 0.1]) + 1
    # Lower-tier cities and younger users watch prices more.
    sensitivity = rng.normal(
        0.6 + 0.15 * (tier - 3) - 0.05 * (age - 3), IDIOSYNCRATIC["price_sensitivity"]
    )
    # Heavy-tailed activity: a few users produce a large share of the traffic.
    activity = rng.lognormal(0.0, 1.2, size=n)
    return _Users(
        ids=_unique_ids(rng, n, low=100_000),
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


# --------------------------------------------------------------------------------------------
# Items.


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
    template = _TITLE_TEMPLATES[rng.integers(len(_TITLE_TEMPLATES))]
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


def _make_items(rng: np.random.Generator, n: int, start_ns: int) -> _Items:
    category = _assign_categories(rng, n)
    attr = _draw_attributes(rng, category)
    parts = np.stack([attr[k] for k in ("subtype", "brand", "color", "material", "feature")], 1)
    titles = [_title(rng, c, tuple(a)) for c, a in zip(category, parts, strict=True)]
    category_label, brand_label = _labels(rng, category, attr["brand"])
    modifiers = np.stack([attr["material"], attr["feature"]], axis=1)
    quality, price, relative_price = _price_and_quality(rng, category, attr["brand"], modifiers)
    return _Items(
        ids=_unique_ids(rng, n, low=5_000_000),
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


# --------------------------------------------------------------------------------------------
# Queries and relevance.


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


def _draw_query(rng: np.random.Generator, category: int) -> tuple[str, int, int, int, int]:
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


def _make_queries(rng: np.random.Generator, items: _Items, n: int) -> _Queries:
    """A pool of `n` distinct queries over the categories on sale, with Zipf popularity."""
    present, counts = np.unique(items.category, return_counts=True)
    seen: dict[str, tuple[int, ...]] = {}
    for _ in range(50 * n):  # bounded: a tiny catalogue may have fewer distinct queries
        if len(seen) == n:
            break
        category = int(rng.choice(present, p=counts / counts.sum()))
        text, *intent = _draw_query(rng, category)
        typo = rng.random() < TYPO_RATE
        seen.setdefault(_typo(rng, text) if typo else text, (category, *intent, typo))
    intents = np.array(list(seen.values()), dtype=np.int64).reshape(-1, 6)
    text = np.array(list(seen), dtype=object)
    # Zipf over a random order, damped for long (specific) queries and for misspellings: the
    # head of the query log is short and correctly spelled.
    n_named = (intents[:, 1:5] >= 0).sum(axis=1)
    damping = 0.6**n_named * np.where(intents[:, 5] == 1, 0.05, 1.0)
    popularity = damping / (1.0 + rng.permutation(len(text))) ** 0.9
    return _Queries(text, *intents[:, :5].T, popularity=popularity)


def _match(
    asked: np.ndarray, has: np.ndarray, same: np.ndarray, bonus: float, off: float, penalty: float
) -> np.ndarray:
    """(Q, I) relevance term: `bonus` when the item has what the query names (`off` when it is in
    another category), minus `penalty` when an item of the right category lacks it."""
    asked = (asked >= 0)[:, None]
    return np.where(asked & has, np.where(same, bonus, off), np.where(asked & same, -penalty, 0))


def _relevance(rng: np.random.Generator, queries: _Queries, items: _Items) -> np.ndarray:
    """(Q, I) latent relevance in [0, 3], what a careful rater would grade.

    It scores the query's intent (its category, and any subtype, brand, color, material or
    feature it names) against the same words in the title, so a synonym or a typo does not lower
    it: "couch" asks for a sofa. A model has to learn that from text and clicks.
    """
    same = queries.category[:, None] == items.category[None, :]
    related = (_GROUP_OF[queries.category][:, None] == _GROUP_OF[items.category][None, :]) & ~same
    relevance = np.where(same, 1.9, np.where(related, 0.6, 0.1))
    same_subtype = same & (queries.subtype[:, None] == items.subtype[None, :])
    relevance += _match(queries.subtype, same_subtype, same, 0.5, 0.0, 0.4)
    relevance += _match(queries.brand, queries.brand[:, None] == items.brand, same, 0.5, 0.25, 0.7)
    relevance += _match(queries.color, queries.color[:, None] == items.color, same, 0.3, 0.1, 0.4)
    has_modifier = (queries.modifier[:, None, None] == items.modifiers[None, :, :]).any(axis=2)
    relevance += _match(queries.modifier, has_modifier, same, 0.4, 0.1, 0.3)
    # Pair-level taste that no attribute explains: the irreducible part.
    relevance += rng.normal(0.0, IDIOSYNCRATIC["relevance"], relevance.shape)
    return np.clip(relevance, 0.0, 3.0)


# --------------------------------------------------------------------------------------------
# Traffic: requests, ranked lists, impressions.


def _list_lengths(rng: np.random.Generator, total: int, n_items: int) -> np.ndarray:
    """How deep each request scrolls, so that the lengths add up to exactly `total`."""
    lengths = np.minimum(rng.geometric(0.12, size=total), min(MAX_LIST_LENGTH, n_items))
    cumulative = np.cumsum(lengths)
    n_requests = int(np.searchsorted(cumulative, total)) + 1
    lengths = lengths[:n_requests]
    lengths[-1] -= cumulative[n_requests - 1] - total
    return lengths


def _request_seconds(rng: np.random.Generator, n: int) -> np.ndarray:
    hour = rng.choice(24, size=n, p=_HOURLY_TRAFFIC / _HOURLY_TRAFFIC.sum())
    return hour * 3600.0 + rng.uniform(0.0, 3600.0, size=n)


def _pick_queries(
    rng: np.random.Generator, preference: np.ndarray, queries: _Queries
) -> np.ndarray:
    """A query per search request: a category from the user's taste, then a query in it."""
    offered = np.isin(np.arange(len(CATALOG)), queries.category)
    # People also search outside their favourite categories, but never for what is not sold.
    taste = np.log(0.7 * preference + 0.3 / len(CATALOG))  # (R, C)
    taste[:, ~offered] = -np.inf
    category = np.argmax(taste + rng.gumbel(size=taste.shape), axis=1)  # Gumbel-max
    picked = np.empty(len(category), dtype=np.int64)
    for c in np.flatnonzero(offered):
        rows, pool = np.flatnonzero(category == c), np.flatnonzero(queries.category == c)
        weights = queries.popularity[pool]
        picked[rows] = rng.choice(pool, size=len(rows), p=weights / weights.sum())
    return picked


def _top_k(scores: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rank each row's columns by score; keep the first `lengths[r]`: (row, column, position)."""
    if len(lengths) == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty
    k = int(lengths.max())
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]  # (R, k) unordered
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)  # (R, k) best first
    position = np.broadcast_to(np.arange(1, k + 1), top.shape)
    keep = position <= lengths[:, None]
    rows = np.broadcast_to(np.arange(len(lengths))[:, None], top.shape)
    return rows[keep], top[keep], position[keep]


def _explore(rng: np.random.Generator, shape: tuple[int, int], spread: float) -> np.ndarray:
    # About 1.5 random items per list get a random boost: the off-target items that real rankers
    # show too, which let a model see what bad matches look like.
    chosen = rng.random(shape) < 1.5 / shape[1]
    return np.where(chosen, rng.uniform(0.0, spread, shape), 0.0)


def _search_scores(
    rng: np.random.Generator, query: np.ndarray, items: _Items, relevance: np.ndarray
) -> np.ndarray:
    """(R, I) scores of the production search ranker: noisy relevance plus a little quality."""
    shape = (len(query), len(items.ids))
    noise = rng.normal(0.0, 0.35, shape)
    return relevance[query] + 0.15 * items.quality + noise + _explore(rng, shape, 3.5)


def _feed_scores(
    rng: np.random.Generator, user: np.ndarray, users: _Users, items: _Items
) -> np.ndarray:
    """(R, I) scores of the feed recommender: the user's category taste plus popularity."""
    shape = (len(user), len(items.ids))
    taste = np.log(users.preference[user][:, items.category])  # (R, I)
    noise = rng.gumbel(size=shape)
    return 1.2 * taste + 0.5 * np.log(items.popularity) + noise + _explore(rng, shape, 6.0)


def _simulate_day(
    rng: np.random.Generator, shop: _Shop, day: int, n: int, search_share: float, day_ns: int
) -> _Traffic:
    """One day of `n` impressions: requests, their ranked lists, and when each item was shown."""
    users, items, queries, relevance = shop.users, shop.items, shop.queries, shop.relevance
    lengths = _list_lengths(rng, n, len(items.ids))
    user = rng.choice(len(users.ids), size=len(lengths), p=users.activity)
    search = rng.random(len(lengths)) < search_share
    seconds = _request_seconds(rng, len(lengths))
    query = np.full(len(lengths), -1, dtype=np.int64)
    query[search] = _pick_queries(rng, users.preference[user[search]], queries)
    scores = _search_scores(rng, query[search], items, relevance)
    s_rows, s_items, s_pos = _top_k(scores, lengths[search])
    f_rows, f_items, f_pos = _top_k(
        _feed_scores(rng, user[~search], users, items), lengths[~search]
    )
    request = np.concatenate([np.flatnonzero(search)[s_rows], np.flatnonzero(~search)[f_rows]])
    position = np.concatenate([s_pos, f_pos])
    # Later positions are seen a moment later; the jitter keeps timestamps distinct.
    offset = (position - 1) * 1.7 + rng.uniform(0.0, 1.0, len(position))
    time_s = np.minimum(seconds[request] + offset, 86_399.999)
    order = np.lexsort((position, request, time_s))
    return _Traffic(
        day=np.full(n, day, dtype=np.int64),
        time_ns=day_ns + np.round(time_s[order] * 1e3).astype(np.int64) * 10**6,
        user=user[request][order],
        item=np.concatenate([s_items, f_items])[order],
        query=query[request][order],
        position=position[order].astype(np.int64),
    )


def _concat_traffic(days: list[_Traffic]) -> _Traffic:
    fields = _Traffic.__dataclass_fields__
    return _Traffic(**{f: np.concatenate([getattr(d, f) for d in days]) for f in fields})


# --------------------------------------------------------------------------------------------
# Outcomes: click and purchase.


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _calibrate(logit: np.ndarray, weight: np.ndarray, target: float) -> float:
    """The intercept b with sum(weight * sigmoid(b + logit)) / sum(weight) == target (bisection)."""
    low, high = -20.0, 20.0
    for _ in range(60):
        mid = (low + high) / 2
        rate = np.sum(weight * _sigmoid(mid + logit)) / np.sum(weight)
        low, high = (mid, high) if rate < target else (low, mid)
    return (low + high) / 2


def _outcome_probabilities(
    traffic: _Traffic, shop: _Shop
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(p_click, p_purchase_given_click, true_relevance) of every impression."""
    users, items, relevance = shop.users, shop.items, shop.relevance
    u, i, search = traffic.user, traffic.item, traffic.query >= 0
    affinity = np.log(users.preference[u, items.category[i]] * len(CATALOG))
    price = items.relative_price[i] * users.price_sensitivity[u]
    true_relevance = np.where(search, relevance[np.maximum(traffic.query, 0), i], np.nan)
    fit = np.where(search, true_relevance - 1.5, 0.0)
    click_logit = (
        0.9 * affinity
        + 0.5 * items.quality[i]  # shared with the purchase: clicks teach quality to cvr
        - 0.35 * price
        + 0.9 * fit
        + 0.3 * search
        + users.click_bias[u]
    )
    # Examination: a user sees position p with probability 1 / log2(p + 1) (the DCG discount).
    examined = 1.0 / np.log2(traffic.position + 1.0)
    click_logit += _calibrate(click_logit, examined, TARGET_CTR / examined.mean())
    p_click = examined * _sigmoid(click_logit)
    # A purchase cares more about quality and price, less about taste, not about position.
    buy_logit = (
        1.1 * items.quality[i]
        - 0.25 * items.relative_price[i]
        - 1.0 * price
        + 0.3 * affinity
        + 0.5 * fit
        + users.buy_bias[u]
    )
    buy_logit += _calibrate(buy_logit, p_click, TARGET_PURCHASE_PER_CLICK)
    return p_click, _sigmoid(buy_logit), true_relevance


def _draw_outcomes(
    rng: np.random.Generator, traffic: _Traffic, shop: _Shop
) -> dict[str, np.ndarray]:
    """Clicks and purchases drawn from their probabilities, with the truth beside them."""
    p_click, p_buy, true_relevance = _outcome_probabilities(traffic, shop)
    draws = rng.random((2, len(p_click)))
    click = (draws[0] < p_click).astype(np.int64)
    return {
        "click": click,
        "purchase": click * (draws[1] < p_buy),  # a purchase needs a click
        "p_click": p_click,
        "p_purchase_given_click": p_buy,
        "true_relevance": true_relevance,
    }


# --------------------------------------------------------------------------------------------
# Judgements.


def _sample(
    rng: np.random.Generator, candidates: np.ndarray, weights: np.ndarray, k: int
) -> np.ndarray:
    k = min(k, len(candidates))
    if k == 0:
        return candidates[:0]
    return rng.choice(candidates, size=k, replace=False, p=weights / weights.sum())


def _judged_items(
    rng: np.random.Generator, scores: np.ndarray, same: np.ndarray, related: np.ndarray, k: int
) -> np.ndarray:
    """Which items a rater sees for one query: the ranker's best matches, hard negatives from the
    same category (wrong brand, color, ...), and a few from other categories."""
    on = np.flatnonzero(same)
    noisy = scores[on] + rng.normal(0.0, 0.3, len(on))
    top = on[np.argsort(-noisy, kind="stable")][: int(np.ceil(0.4 * k))]
    rest = np.setdiff1d(on, top)
    hard = _sample(rng, rest, 3.2 - scores[rest], int(np.ceil(0.35 * k)))
    off = np.flatnonzero(~same)
    off = _sample(rng, off, np.where(related[off], 3.0, 1.0), k - len(top) - len(hard))
    return np.concatenate([top, hard, off])


def _rater_grades(rng: np.random.Generator, true_relevance: np.ndarray) -> np.ndarray:
    # Each rater grades an integer 0..3 around the truth; the label is their average.
    noisy = true_relevance[:, None] + rng.normal(0.0, 0.45, (len(true_relevance), N_RATERS))
    return np.clip(np.round(noisy), 0, 3).mean(axis=1)


def _judgment_days(n_days: int) -> list[int]:
    # Two rating rounds (mid-period and the last day), one when the period is a single day.
    return sorted({(n_days - 1) // 2, n_days - 1})


def _make_judgments(
    rng: np.random.Generator, shop: _Shop, size: SimulationSize
) -> dict[str, np.ndarray]:
    """Judged (query, item) pairs: columns query, item, true, relevance, round (0 or 1)."""
    queries, items, relevance = shop.queries, shop.items, shop.relevance
    n = min(size.n_judged_queries, len(queries.text))
    # Raters see head and tail queries alike: sample by the square root of popularity.
    weights = np.sqrt(queries.popularity)
    chosen = rng.choice(len(queries.text), size=n, replace=False, p=weights / weights.sum())
    groups = _GROUP_OF[items.category]
    pairs = []
    for q in chosen:
        same = items.category == queries.category[q]
        related = (groups == _GROUP_OF[queries.category[q]]) & ~same
        picked = _judged_items(rng, relevance[q], same, related, size.judgments_per_query)
        pairs.append(np.stack([np.full(len(picked), q), picked], axis=1))
    query, item = np.concatenate(pairs).T
    true = relevance[query, item]
    # The first queries go to the first rating round, the rest to the second.
    n_rounds = len(_judgment_days(size.n_days))
    rounds = (np.repeat(np.arange(n), [len(p) for p in pairs]) * n_rounds) // n
    return {
        "query": query,
        "item": item,
        "true": true,
        "relevance": _rater_grades(rng, true),
        "round": rounds,
    }


# --------------------------------------------------------------------------------------------
# Writing.


def _write(columns: dict[str, object], schema: pa.Schema, path: Path) -> None:
    # from_pandas: NaN becomes null (the feed's true_relevance).
    arrays = [pa.array(columns[f.name], type=f.type, from_pandas=True) for f in schema]
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_arrays(arrays, schema=schema), path)


def _clear(landing: Path, truth: Path) -> None:
    # Only what this stage owns: other sources may share the landing and truth folders.
    for table in TABLES:
        shutil.rmtree(landing / table, ignore_errors=True)
    for name in ("impressions.parquet", "judgments.parquet"):
        (truth / name).unlink(missing_ok=True)


def _write_catalogue(users: _Users, items: _Items, landing: Path, batch: str) -> None:
    user_columns = {
        "user_id": users.ids,
        "signup_ts": users.signup_ns,
        "age_bucket": users.age_bucket,
        "gender": users.gender,
        "city_tier": users.city_tier,
    }
    _write(user_columns, USERS_SCHEMA, landing / "users" / f"{batch}.parquet")
    item_columns = {
        "item_id": items.ids,
        "title": items.title,
        "category": items.category_label,
        "brand": items.brand_label,
        "price": items.price,
        "created_ts": items.created_ns,
    }
    _write(item_columns, ITEMS_SCHEMA, landing / "items" / f"{batch}.parquet")


def _impression_columns(
    traffic: _Traffic, outcome: dict[str, np.ndarray], shop: _Shop, dates: list[date]
) -> dict[str, np.ndarray]:
    """Landing and truth columns of every impression; ids count up within each day."""
    users, items, queries = shop.users, shop.items, shop.queries
    search = traffic.query >= 0
    counter = np.arange(len(traffic.day)) - np.searchsorted(traffic.day, traffic.day)
    stamps = [d.strftime("%Y%m%d") for d in dates]
    ids = [f"imp-{stamps[d]}-{n:06d}" for d, n in zip(traffic.day, counter, strict=True)]
    return {
        "impression_id": np.array(ids, dtype=object),
        "event_timestamp": traffic.time_ns,
        "user_id": users.ids[traffic.user],
        "item_id": items.ids[traffic.item],
        "scenario": np.where(search, "search", "feed").astype(object),
        "query": np.where(search, queries.text[np.maximum(traffic.query, 0)], None),
        "position": traffic.position,
        **outcome,
    }


def _write_impressions(
    columns: dict[str, np.ndarray], day: np.ndarray, dates: list[date], landing: Path, truth: Path
) -> None:
    for d, day_date in enumerate(dates):
        rows = day == d
        part = {name: values[rows] for name, values in columns.items()}
        _write(part, IMPRESSIONS_SCHEMA, landing / "impressions" / f"{day_date}.parquet")
    _write(columns, TRUTH_IMPRESSIONS_SCHEMA, truth / "impressions.parquet")


def _write_judgments(
    rng: np.random.Generator,
    judged: dict[str, np.ndarray],
    shop: _Shop,
    dates: list[date],
    landing: Path,
    truth: Path,
) -> int:
    """Write one batch per rating round; return the number of batches."""
    items, queries = shop.items, shop.queries
    days = _judgment_days(len(dates))
    # Raters work office hours on the day of their round.
    day_ns = np.array([_epoch_ns(dates[d]) for d in days])[judged["round"]]
    judged_at = day_ns + (rng.uniform(8 * 3600, 18 * 3600, len(day_ns)) * 1e9).astype(np.int64)
    columns = {
        "query": queries.text[judged["query"]],
        "item_id": items.ids[judged["item"]],
        "relevance": judged["relevance"],
        "judged_at": judged_at,
        "true_relevance": judged["true"],
    }
    for r, d in enumerate(days):
        part = {name: values[judged["round"] == r] for name, values in columns.items()}
        _write(part, JUDGMENTS_SCHEMA, landing / "judgments" / f"{dates[d]}.parquet")
    _write(columns, TRUTH_JUDGMENTS_SCHEMA, truth / "judgments.parquet")
    return len(days)


# --------------------------------------------------------------------------------------------
# Entry point.


def _make_shop(rng: dict[str, np.random.Generator], size: SimulationSize, start: date) -> _Shop:
    users = _make_users(rng["users"], size.n_users, _epoch_ns(start))
    items = _make_items(rng["items"], size.n_items, _epoch_ns(start))
    # Enough distinct queries for the raters and a long tail for the search traffic.
    queries = _make_queries(rng["queries"], items, max(2 * size.n_judged_queries, size.n_items))
    return _Shop(users, items, queries, _relevance(rng["relevance"], queries, items))


def _summary(
    shop: _Shop, outcome: dict[str, np.ndarray], judged: dict[str, np.ndarray], batches: int
) -> SimulationSummary:
    n_impressions = len(outcome["click"])
    clicks, purchases = int(outcome["click"].sum()), int(outcome["purchase"].sum())
    return SimulationSummary(
        users=len(shop.users.ids),
        items=len(shop.items.ids),
        impressions=n_impressions,
        clicks=clicks,
        purchases=purchases,
        judgments=len(judged["query"]),
        batches=batches,
        ctr=clicks / max(n_impressions, 1),
        cvr=purchases / max(clicks, 1),
    )


def run(config: SimulateConfig, landing: Path, truth: Path) -> SimulationSummary:
    """Simulate the shop for `config.active`; write the raw batches under `landing` and the ground
    truth under `truth`, replacing what an earlier run wrote there."""
    size, rng = config.active, _streams(config.seed)
    dates = [config.start_date + timedelta(days=d) for d in range(size.n_days)]
    shop = _make_shop(rng, size, config.start_date)
    days = [
        _simulate_day(
            rng["traffic"], shop, d, size.impressions_per_day, config.search_share, _epoch_ns(day)
        )
        for d, day in enumerate(dates)
    ]
    traffic = _concat_traffic(days)
    outcome = _draw_outcomes(rng["outcomes"], traffic, shop)
    judged = _make_judgments(rng["judgments"], shop, size)

    _clear(landing, truth)
    _write_catalogue(shop.users, shop.items, landing, str(config.start_date))
    columns = _impression_columns(traffic, outcome, shop, dates)
    _write_impressions(columns, traffic.day, dates, landing, truth)
    n_judgment_batches = _write_judgments(rng["judgments"], judged, shop, dates, landing, truth)
    return _summary(shop, outcome, judged, 2 + len(dates) + n_judgment_batches)
