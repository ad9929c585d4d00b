"""Tests of metamask.data."""
