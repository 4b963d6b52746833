"""Request-time features: how well the search query matches the item, computed per request.

An on-demand view has no table and no TTL of its own: its inputs are the `query` sent with the
request (training: a column of the entity dataframe) and the item profile as of that moment,
so it is exactly as fresh as item_profile (PROFILE_TTL). A feed impression has no query; every
feature is then 0.
"""

import pandas as pd
from data_sources import search_request
from feast import Field
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float32, Int64

from features.item import item_profile


# Feast 0.67 cannot keep a description or tags on an on-demand view's fields: `feast apply`
# compares them with the fields it infers by running the function, which have neither, and
# fails (feast-dev/feast#3617, closed as won't fix). The `kind` of every field therefore sits on
# the view's tags and the field descriptions in the view's description.
@on_demand_feature_view(
    sources=[item_profile[["title", "category", "brand"]], search_request],
    schema=[
        Field(name="title_jaccard", dtype=Float32),
        Field(name="query_coverage", dtype=Float32),
        Field(name="category_in_query", dtype=Int64),
        Field(name="brand_in_query", dtype=Int64),
    ],
    mode="pandas",
    description=(
        "Lexical match of the search query with the item, all 0 without a query: "
        "title_jaccard = Jaccard overlap of query and title word sets; "
        "query_coverage = share of query words found in the title; "
        "category_in_query, brand_in_query = 1 if the item's category (brand) is a phrase "
        "of the query."
    ),
    tags={"owner": "recsys-data", "domain": "query_item", "kind": "numeric"},
)
def query_item_match(inputs: pd.DataFrame) -> pd.DataFrame:
    # Feast serializes this function into the registry and the process that runs it need not
    # import this module: what it uses is imported inside. Words come from the platform's one
    # tokenizer (mtlrec.tokens), the one the model's own text-match features use.
    import numpy as np
    import pandas as pd

    from mtlrec.arrays import unique_rows
    from mtlrec.tokens import words

    split: dict[object, tuple[str, ...]] = {}  # a request has one query, titles repeat

    def tokens(text: object) -> tuple[str, ...]:
        key = text if isinstance(text, str) else None
        found = split.get(key)
        if found is None:
            found = split[key] = tuple(words(key))
        return found

    def phrase_in(phrase: object, padded_query: str) -> int:
        found = tokens(phrase)
        return int(bool(found) and found != ("unknown",) and f" {' '.join(found)} " in padded_query)

    def match(query: object, title: object, category: object, brand: object) -> tuple:
        query_words = tokens(query)
        asked, title_words = set(query_words), set(tokens(title))
        shared = len(asked & title_words)
        union = len(asked | title_words)
        padded = f" {' '.join(query_words)} "
        return (
            shared / union if query_words and union else 0.0,
            shared / len(asked) if query_words else 0.0,
            phrase_in(category, padded),
            phrase_in(brand, padded),
        )

    # (query, item) pairs repeat (every feed row has no query; training rows repeat a query's
    # items): each distinct row is matched once, then gathered. Non-text values (None, NaN)
    # all read as "no text".
    columns = ["query", "title", "category", "brand"]
    codes = np.stack([pd.factorize(inputs[c])[0] + 1 for c in columns], axis=1)  # 0: missing
    distinct, index = unique_rows(codes)
    first = np.zeros(len(distinct), np.int64)
    first[index] = np.arange(len(index))  # a row of each distinct tuple (any: they are equal)
    values = [inputs[c].to_numpy()[first] for c in columns]
    rows = [
        match(*(value if isinstance(value, str) else None for value in row))
        for row in zip(*values, strict=True)
    ]
    names = ["title_jaccard", "query_coverage", "category_in_query", "brand_in_query"]
    matched = pd.DataFrame(rows, columns=names) if rows else pd.DataFrame(columns=names)
    out = matched.iloc[index].set_axis(inputs.index)
    return out.astype(
        {
            "title_jaccard": "float32",
            "query_coverage": "float32",
            "category_in_query": "int64",
            "brand_in_query": "int64",
        }
    )
