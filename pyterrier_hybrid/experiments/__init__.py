"""Experiments built from the package's parts: the comparison of systems and the robustness studies.

Data flows one way: experiments use every other stage (``datasets``, ``models``, ``training``, ``retrieval``,
``evaluation``, ``robustness``); none of those imports from here. The ``pyterrier-hybrid compare`` and
``pyterrier-hybrid robustness`` commands drive these modules:

- :mod:`.presets`: :class:`ComparisonPreset` (directions, trained systems, seeds, sweep, budgets),
  :class:`RecipeSystem` (a trained system with its own recipe), :data:`PRESETS` (cpu, gpu, demo, ...),
  :func:`override_preset`;
- :mod:`.training_runs`: the models a comparison trains, trained once or reused (:class:`ModelStore`);
- :mod:`.comparison`: :class:`Comparison`, the whole run (trains, evaluates or reuses every system per direction);
- :mod:`.comparison_report`: the comparison's tables, plots and Markdown, from the evaluated systems;
- :mod:`.system_records`: :class:`SystemEntry` (a system to evaluate) and :class:`SystemRun` (its evaluation);
- :mod:`.records`: :class:`RunRecord`, a result folder's ``run.json`` and the one rule for reusing a saved result;
- :mod:`.aggregate`: mean and spread over seeds, whether a difference exceeds the spread, the seen/unseen split;
- :mod:`.training_curves`: how each trained model's run went (steps, early stop, held-out loss) and its loss curves;
- :mod:`.significance`: paired tests through ``pt.Experiment`` with Holm correction;
- :mod:`.sweep`: the alpha sweep's table and plot;
- :mod:`.robustness`: the robustness studies in one subpackage: clean vs perturbed queries for every system
  (:class:`RobustnessConfig`, :func:`run_robustness`) and in-collection vs cross-collection training on held-out
  articles (:func:`run_domain_shift`), their configuration, report, plots and command.

Names are imported lazily, so ``import pyterrier_hybrid.experiments`` stays cheap.
"""
from __future__ import annotations

from .._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "BASELINE_ALPHA": ".presets",
    "MAIN_SYSTEMS": ".presets",
    "MLQA_TO_XQUAD": ".presets",
    "PRESETS": ".presets",
    "XQUAD_TO_MLQA": ".presets",
    "ComparisonPreset": ".presets",
    "Direction": ".presets",
    "PresetError": ".presets",
    "RecipeSystem": ".presets",
    "get_preset": ".presets",
    "override_preset": ".presets",
    "ModelStore": ".training_runs",
    "TrainingRun": ".training_runs",
    "plan_training": ".training_runs",
    "Comparison": ".comparison",
    "SystemEntry": ".system_records",
    "SystemRun": ".system_records",
    "RunRecord": ".records",
    "read_record": ".records",
    "aggregate_table": ".aggregate",
    "language_split": ".aggregate",
    "markdown_with_spread": ".aggregate",
    "mean_result": ".aggregate",
    "seed_spread_table": ".aggregate",
    "seen_unseen_table": ".aggregate",
    "table1": ".aggregate",
    "plot_loss_curves": ".training_curves",
    "training_runs_table": ".training_curves",
    "TestSet": ".significance",
    "balanced_pairs": ".significance",
    "build_test_sets": ".significance",
    "paired_significance": ".significance",
    "significance_tests": ".significance",
    "top_runs": ".significance",
    "plot_alpha_sweep": ".sweep",
    "sweep_frame": ".sweep",
    "RobustnessConfig": ".robustness.config",
    "StudyOptions": ".robustness.config",
    "run_robustness": ".robustness.study",
    "DomainShiftConfig": ".robustness.domain_shift",
    "held_out_articles": ".robustness.domain_shift",
    "run_domain_shift": ".robustness.domain_shift",
})
