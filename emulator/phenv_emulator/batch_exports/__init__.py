"""Batch exports: their endpoints and destinations, and the runs, logs and backfills below them."""
