"""metamask's tests; each subpackage mirrors a package of metamask (tests/<package>/test_<module>.py)."""
