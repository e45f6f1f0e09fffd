"""The financial-news sentiment monitor: sources, pipeline, store, trends, surge detection, alerts."""
