"""Tests of metamask.data.dabs."""
