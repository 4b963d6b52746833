"""The ranking service: retrieval, online features, the production model and the blend."""
