"""The shop's latent state: learnable from what a model can see."""

from __future__ import annotations

import numpy as np

from mtlrec.shop import CATALOG
from mtlrec.shop.world import draw_query, make_items


def test_item_quality_follows_what_the_catalogue_shows() -> None:
    # Learnable by design: brand, feature and material explain most of an item's quality, so a
    # model can reach the oracle from the catalogue and the clicks.
    items = make_items(np.random.default_rng(0), 2000, 0)
    columns = [items.brand + 1, items.modifiers[:, 0], items.modifiers[:, 1]]
    design = np.concatenate([np.eye(c.max() + 1)[c] for c in columns], axis=1)
    fitted = design @ np.linalg.lstsq(design, items.quality, rcond=None)[0]
    explained = 1 - np.var(items.quality - fitted) / np.var(items.quality)
    assert explained > 0.8


def test_a_query_names_a_subtype_only_with_words_other_than_the_category_s() -> None:
    # "sofa" and "loveseat" ask for any sofa even though Sofa and Loveseat are subtypes: the
    # same words must mean the same intent, or no model reading the query could grade it.
    rng = np.random.default_rng(0)
    drawn = [(c, *draw_query(rng, c)) for c in range(len(CATALOG)) for _ in range(60)]
    generic = {c: (s.name, *s.synonyms) for c, s in enumerate(CATALOG)}
    named = [(c, subtype) for c, _, subtype, *_ in drawn if subtype >= 0]
    assert named and all(CATALOG[c].subtypes[s].lower() not in generic[c] for c, s in named)
    assert any(text == "sofa" for c, text, *_ in drawn)  # drawn as name, synonym or subtype
    assert all(subtype == -1 for c, text, subtype, *_ in drawn if text in generic[c])
