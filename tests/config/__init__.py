"""Tests of metamask.config."""
