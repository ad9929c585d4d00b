"""Betty problem nodes: the base with metamask's fixes, and each method's nodes."""
