"""Tests of metamask.downstream: probe, fine-tuning, export, load, embed, start weights."""
