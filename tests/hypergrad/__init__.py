"""Tests of metamask.hypergrad."""
