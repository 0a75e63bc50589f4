"""The in-memory data: records, the seed they start from, and batch export log entries."""
