"""Tests of metamask.data.formats."""
