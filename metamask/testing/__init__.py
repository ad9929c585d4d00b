"""Problems with known answers, for tests and benchmarks, not for training.

:mod:`metamask.testing.closed_form` holds closed-form bilevel problems and their exact
hypergradients; :mod:`metamask.testing.closed_form_graphs` builds them as real nodes in a
``GraphEngine``. This package may import anything in metamask; nothing in metamask imports it.
"""
