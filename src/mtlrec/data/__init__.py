"""Raw data sources: the synthetic shop and public datasets, each written in the raw contract."""
