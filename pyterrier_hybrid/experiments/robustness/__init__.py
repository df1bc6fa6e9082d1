"""The robustness studies, in one place: retrievers on perturbed queries, and the cost of a collection shift.

- :mod:`.config`: :class:`StudyOptions` (what every study shares), :class:`RobustnessConfig`, :data:`PRESETS`,
  :class:`RobustnessError`;
- :mod:`.study`: every system on clean and perturbed queries (:func:`run_robustness`);
- :mod:`.domain_shift`: in-collection against cross-collection training on held-out articles
  (:class:`DomainShiftConfig`, :func:`run_domain_shift`);
- :mod:`.report`, :mod:`.plots`: their tables and figures, from the rows the studies measured;
- :mod:`.cli`: ``pyterrier-hybrid robustness``.

The perturbations themselves are :mod:`pyterrier_hybrid.robustness` (PyTerrier transformers placed before a
retriever); this subpackage runs the studies built from them. Names are imported lazily, so importing it stays cheap.
"""
from __future__ import annotations

from ..._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "PRESETS": ".config",
    "RobustnessConfig": ".config",
    "RobustnessError": ".config",
    "StudyOptions": ".config",
    "EDIT_KINDS": ".report",
    "KINDS": ".report",
    "build_system": ".study",
    "run_robustness": ".study",
    "run_study": ".study",
    "DomainShiftConfig": ".domain_shift",
    "held_out_articles": ".domain_shift",
    "run_domain_shift": ".domain_shift",
})
