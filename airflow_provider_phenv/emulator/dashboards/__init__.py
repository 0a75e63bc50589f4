"""Dashboards and their collaborators."""
