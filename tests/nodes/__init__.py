"""Tests of metamask.nodes."""
