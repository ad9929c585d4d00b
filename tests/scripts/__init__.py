"""Tests of the example and benchmark scripts."""
