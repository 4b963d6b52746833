"""mtlrec: retraining platform for a multi-task search-and-recommendation model."""

__version__ = "0.1.0"
