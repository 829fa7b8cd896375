"""Internals of the fxflops pytest plugin.

:mod:`fxflops.pytest_plugin` only declares options, hooks and the fixture; the work is here, one job
per module:

* :mod:`~fxflops._pytest.options`: command-line and ini settings, resolved once per session.
* :mod:`~fxflops._pytest.marker`: the ``@pytest.mark.flops`` keywords, validated at setup.
* :mod:`~fxflops._pytest.measure`: what one ``flops(...)`` call recorded, and the fixture object.
* :mod:`~fxflops._pytest.baseline`: the committed ``__flops__/<module>.json`` files.
* :mod:`~fxflops._pytest.failures`: the failure texts that replace a test's report.
* :mod:`~fxflops._pytest.session`: per-session state, comparisons, xdist merge, baseline writes.
* :mod:`~fxflops._pytest.summary`: the end-of-session terminal report.

None of these modules imports torch; the fixture imports :func:`fxflops.count` when first called.
"""

from __future__ import annotations
