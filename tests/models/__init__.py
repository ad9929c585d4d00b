"""Tests of metamask.models."""
