"""Tests of metamask.data.embedded."""
